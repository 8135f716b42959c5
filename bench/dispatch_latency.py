"""Dispatch latency: a ticket is set ready -> a provider waiting with `wait=` has claimed it.

Providers (threads, each its own dss_client session) hold claims open with `wait=30` against
the web server under gunicorn. The script creates a ticket, notes the time, marks it ready, and
the provider that receives it notes when its claim answered; one ticket at a time. Baselines in
the same run: the `mark_ready` request alone (the floor: the latency includes it), and the same
dispatch with providers polling every `--poll-interval` s without `wait=` (how clients of the
original server wait). Printed: p50/p99/max of each; target p50 < 50 ms with `wait=`.

    .venv/bin/python bench/dispatch_latency.py [--tickets 200] [--providers 4]
"""
from __future__ import annotations

import argparse
import queue
import statistics
import sys
import threading
import time
from pathlib import Path

from dss_client import DSSClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webstack import PROVIDER, machine_note, percentile, web_stack  # noqa: E402

WAIT_SECONDS = 30


def provider_loop(url: str, githash: str, name: str, wait: float | None, poll_interval: float,
                  claims: queue.Queue, stop: threading.Event) -> None:
    """Claim until stopped; put (ticket id, monotonic time the claim answered) on `claims`."""
    client = DSSClient(url, timeout=WAIT_SECONDS + 30)
    while not stop.is_set():
        claim = client.claim([githash], provider=PROVIDER, code=name, wait=wait)
        answered = time.monotonic()
        if claim is not None:
            claims.put((claim.ticket_id, answered))
        elif wait is None:
            stop.wait(poll_interval)


def dispatch(stack, githash: str, tickets: int, providers: int, wait: float | None,
             poll_interval: float = 0.0) -> tuple[list[float], list[float]]:
    """One ticket at a time: seconds from `mark_ready` being sent to the claim answering, and
    seconds the `mark_ready` request itself took."""
    claims: queue.Queue = queue.Queue()
    stop = threading.Event()
    threads = [threading.Thread(target=provider_loop, daemon=True,
                                args=(stack.url, githash, f"p{i}", wait, poll_interval, claims, stop))
               for i in range(providers)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # let every provider's first claim reach the server and start waiting
    user = stack.client()
    latencies, requests = [], []
    for _ in range(tickets):
        ticket_id = user.create_ticket(githash)
        ready_sent = time.monotonic()
        user.mark_ready(ticket_id)
        requests.append(time.monotonic() - ready_sent)
        claimed_id, answered = claims.get(timeout=WAIT_SECONDS + poll_interval + 30)
        assert claimed_id == ticket_id, (claimed_id, ticket_id)
        latencies.append(answered - ready_sent)
    stop.set()
    _release_waiters(stack, githash, providers)
    for thread in threads:
        thread.join(WAIT_SECONDS + 30)
    return latencies, requests


def _release_waiters(stack, githash: str, providers: int) -> None:
    """Waiting claims end when a ticket comes: give each stopped provider one to take."""
    user = stack.client()
    for _ in range(providers):
        user.mark_ready(user.create_ticket(githash))


def summary(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{label:34s} n={len(ms):4d}  p50 {percentile(ms, 50):7.1f} ms  "
            f"p99 {percentile(ms, 99):7.1f} ms  max {max(ms):7.1f} ms  mean {statistics.mean(ms):7.1f} ms")


def main(args) -> int:
    with web_stack(workers=args.workers) as stack:
        waiting_service = stack.register_service("DispatchWait")
        polling_service = stack.register_service("DispatchPoll")
        waited, floor = dispatch(stack, waiting_service, args.tickets, args.providers, WAIT_SECONDS)
        polled, _ = dispatch(stack, polling_service, args.poll_tickets, args.providers, None,
                          args.poll_interval)
    p50 = percentile(waited, 50) * 1000
    print(f"machine: {machine_note()}")
    print(f"gunicorn workers: {args.workers} (gthread), waiting providers: {args.providers}")
    print(summary(f"ready -> claimed, wait={WAIT_SECONDS}", waited))
    print(summary("the mark_ready request alone", floor))
    print(summary(f"ready -> claimed, poll every {args.poll_interval} s", polled))
    print(f"p50 with wait= vs polling: {percentile(waited, 50) / percentile(polled, 50):.3f}x")
    print(f"p50 {p50:.1f} ms (target < 50 ms) {'OK' if p50 < 50 else 'ABOVE TARGET'}")
    return 0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--providers", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--poll-tickets", type=int, default=20, help="tickets of the polling baseline")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
