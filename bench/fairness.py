"""Fair share: one user's batch against single tickets of others, fair order vs lowest id first.

A batch of N tickets by one user is ready at once; single tickets of 10 other users (same tier)
arrive one by one while it drains (spread over the batch's expected time). A few claimer
processes claim through the real gunicorn server on PostgreSQL (`POST
/api/pro/services/claims`, dss_client), each doing a fixed amount of fake work per ticket
(sleep) before marking it `success`. The same workload runs twice in the same run: with
`DSS_CLAIM_ORDER=fifo` (the baseline: lowest id first, the order before fair share) and with
`fair` (the default). Printed: the single tickets' wait (ready -> claimed, from the server's
own timestamps) p50/p99 in both and the ratio, and the batch's total time (its first ready to
its last claimed) in both: fairness must not cost the batch much throughput.

    .venv/bin/python bench/fairness.py [--batch 500] [--singles 10] [--claimers 4] [--work 0.02]
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path
from typing import NamedTuple

from dss_client import DSSClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webstack import NOAUTH_ADMIN, PROVIDER, machine_note, percentile, web_stack  # noqa: E402

ORDERS = ("fifo", "fair")
READY_SQL = ("WITH new AS (INSERT INTO tickets (user_id, service_githash, status, attempts) "
             "SELECT %s, %s, 'ready', 0 FROM generate_series(1, %s) RETURNING id) "
             "INSERT INTO ticket_history (ticket_id, status, atime) "
             "SELECT id, 'ready', now() AT TIME ZONE 'UTC' FROM new")


def claimer(url: str, githash: str, name: str, work: float, done, out) -> None:
    """Claim, work, finish, until the queue is empty after the last single arrived."""
    client = DSSClient(url)
    claimed = []
    while True:
        claim = client.claim([githash], provider=PROVIDER, code=name)
        if claim is None:
            if done.is_set():
                break
            time.sleep(0.005)  # a single is on its way
            continue
        time.sleep(work)
        client.set_status(claim.ticket_id, "success")
        claimed.append(claim.ticket_id)
    out.put(claimed)


class Outcome(NamedTuple):
    single_waits: list[float]  # seconds, ready -> claimed
    batch_seconds: float  # the batch's first ready -> its last claimed
    claimed: list[int]


def make_users(stack, count: int) -> list[int]:
    """`count` users in the NOAUTH admin's tier (so that only fair share tells them apart)."""
    with stack.connect() as connection, connection.cursor() as cursor:
        cursor.execute("INSERT INTO users (email, dispname, sysadmin, tier) "
                       "SELECT 'single' || n || '@example.org', 'single ' || n, false, "
                       "(SELECT tier FROM users WHERE email = %s) "
                       "FROM generate_series(1, %s) n RETURNING id", (NOAUTH_ADMIN, count))
        ids = [row[0] for row in cursor.fetchall()]
    connection.close()
    return ids


def run(order: str, args) -> Outcome:
    with web_stack(workers=args.workers, extra_env={"DSS_CLAIM_ORDER": order}) as stack:
        githash = stack.register_service(f"Fair{order}")
        singles = make_users(stack, args.singles)
        connection = stack.connect()
        connection.autocommit = True  # each single is ready the moment it is inserted
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM users WHERE email = %s", (NOAUTH_ADMIN,))
            batch_user = cursor.fetchone()[0]
            cursor.execute(READY_SQL, (batch_user, githash, args.batch))
            done, out = multiprocessing.Event(), multiprocessing.Queue()
            processes = [multiprocessing.Process(target=claimer, args=(
                stack.url, githash, f"c{i}", args.work, done, out)) for i in range(args.claimers)]
            for process in processes:
                process.start()
            # the singles arrive evenly over the batch's expected time, the last at 80 % of it
            gap = 0.8 * args.batch * args.work / args.claimers / args.singles
            for user in singles:
                time.sleep(gap)
                cursor.execute(READY_SQL, (user, githash, 1))
            done.set()
            claimed = [ticket for _ in processes for ticket in out.get()]
            for process in processes:
                process.join()
            cursor.execute(
                "SELECT t.user_id = %s, extract(epoch FROM t.claimed_at - h.atime), "
                "h.atime, t.claimed_at FROM tickets t JOIN ticket_history h "
                "ON h.ticket_id = t.id AND h.status = 'ready' WHERE t.service_githash = %s",
                (batch_user, githash))
            rows = cursor.fetchall()
        connection.close()
    waits = [float(wait) for in_batch, wait, _, _ in rows if not in_batch]
    batch = [(ready, taken) for in_batch, _, ready, taken in rows if in_batch]
    span = max(taken for _, taken in batch) - min(ready for ready, _ in batch)
    return Outcome(waits, span.total_seconds(), claimed)


def main(args) -> int:
    outcomes = {order: run(order, args) for order in ORDERS}
    print(f"machine: {machine_note()}")
    print(f"batch {args.batch} tickets + {args.singles} singles, {args.claimers} claimers, "
          f"{args.work * 1000:.0f} ms of work per ticket, gunicorn workers: {args.workers}")
    for order, outcome in outcomes.items():
        waits = outcome.single_waits
        print(f"{order:5s}: singles' wait p50 {percentile(waits, 50):7.3f} s, "
              f"p99 {percentile(waits, 99):7.3f} s; batch total {outcome.batch_seconds:6.2f} s")
    fifo, fair = outcomes["fifo"], outcomes["fair"]
    p50 = percentile(fair.single_waits, 50) / percentile(fifo.single_waits, 50)
    p99 = percentile(fair.single_waits, 99) / percentile(fifo.single_waits, 99)
    slower = fair.batch_seconds / fifo.batch_seconds
    print(f"ratio fair/fifo: singles' wait p50 {p50:.3f}, p99 {p99:.3f} (target < 0.1); "
          f"batch total {slower:.2f} (target < 1.1)")
    expected = args.batch + args.singles
    complete = all(len(o.claimed) == len(set(o.claimed)) == expected for o in outcomes.values())
    print(f"every ticket claimed exactly once: {complete}")
    return 0 if complete else 1


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--singles", type=int, default=10)
    parser.add_argument("--claimers", type=int, default=4)
    parser.add_argument("--work", type=float, default=0.02, help="seconds of fake work a ticket")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
