"""Claim throughput: N ready tickets emptied by 8 concurrent claimers, over HTTP and by direct SQL.

HTTP: 8 claimer processes call `POST /api/pro/services/claims` (dss_client) against the web
server under gunicorn (gthread workers) until the answer is `None`. Baseline, in the same run on
the same database: 8 processes with their own PostgreSQL connection run the claim transaction
straight in SQL - the server's own `FOR UPDATE SKIP LOCKED` select (compiled from its models),
then the same writes a claim makes (ticket row, claim and status history, log line). Printed:
claims/s of both, the ratio (target: HTTP >= 0.5 x SQL) and the double claims found (target 0).

Then the floor of HTTP on this machine: the same claimers send as many `GET /healthz` (no
database, no form) through the same server. Where client, server and PostgreSQL share too few
cores, throughput is bound by CPU, and a rate is inversely proportional to the CPU one call
costs them all. Printed: the ceiling of the ratio (SQL's CPU per claim over the floor's server
and client CPU plus the SQL claim's PostgreSQL CPU), the CPU the claim's own work (form,
identity, claim statement, answer) may add to that for a ratio of 0.5, and what it adds.

    .venv/bin/python bench/claim.py [--tickets 10000] [--claimers 8] [--workers 2]
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path
from typing import NamedTuple

import psycopg2
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from dss_client import DSSClient
from dss_server.models import Ticket

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webstack import PROVIDER, children_cpu_seconds, machine_note, postgres_cpu_seconds, web_stack  # noqa: E402


def claim_select_sql() -> str:
    """The server's claim select (services/claims.py), as PostgreSQL text with one parameter."""
    statement = (select(Ticket.id).where(Ticket.status == "ready",
                                         Ticket.service_githash == "GITHASH")
                 .order_by(Ticket.id).limit(1).with_for_update(skip_locked=True))
    sql = str(statement.compile(dialect=postgresql.dialect(),
                                compile_kwargs={"literal_binds": True}))
    return sql.replace("'GITHASH'", "%(githash)s")


def http_claimer(url: str, githash: str, name: str, out) -> None:
    client = DSSClient(url)
    claimed = []
    while (claim := client.claim([githash], provider=PROVIDER, code=name)) is not None:
        claimed.append(claim.ticket_id)
    out.put(claimed)


def sql_claimer(dsn: str, githash: str, name: str, user_id: int, out) -> None:
    connection = psycopg2.connect(dsn)
    select_sql = claim_select_sql()
    claimed = []
    with connection.cursor() as cursor:
        while True:
            cursor.execute(select_sql, {"githash": githash})
            row = cursor.fetchone()
            if row is None:
                connection.rollback()
                break
            ticket_id = row[0]
            cursor.execute("INSERT INTO claim_history (ticket_id, provider, puser_id, provider_code, "
                           "atime) VALUES (%s, 'bench', %s, %s, now() AT TIME ZONE 'UTC') "
                           "RETURNING id", (ticket_id, user_id, name))
            claim_id = cursor.fetchone()[0]
            cursor.execute("UPDATE tickets SET status = 'claimed', claim_id = %s, "
                           "claimed_at = now() AT TIME ZONE 'UTC', "
                           "last_activity = now() AT TIME ZONE 'UTC', attempts = attempts + 1 "
                           "WHERE id = %s", (claim_id, ticket_id))
            cursor.execute("INSERT INTO ticket_history (ticket_id, status, atime) "
                           "VALUES (%s, 'claimed', now() AT TIME ZONE 'UTC')", (ticket_id,))
            cursor.execute("INSERT INTO ticket_log (ticket_id, category, message, atime) "
                           "VALUES (%s, 'info', %s, now() AT TIME ZONE 'UTC')",
                           (ticket_id, f"Ticket claimed by provider bench instance {name}"))
            connection.commit()
            claimed.append(ticket_id)
    connection.close()
    out.put(claimed)


def health_caller(url: str, calls: int, out) -> None:
    client = DSSClient(url)
    for _ in range(calls):
        client.health()
    out.put([])


class Phase(NamedTuple):
    """One set of processes run together: what they did, in how long, at what CPU cost."""
    calls: int
    seconds: float
    client_cpu: float  # seconds, the processes' own
    server_cpu: float  # seconds, the gunicorn workers' (0 for direct SQL)
    postgres_cpu: float
    claimed: list[int]

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def ms_per_call(self, cpu_seconds: float) -> float:
        return 1000 * cpu_seconds / max(1, self.calls)

    @property
    def cpu_ms(self) -> float:
        """All CPU one call cost: clients, server and PostgreSQL."""
        return self.ms_per_call(self.client_cpu + self.server_cpu + self.postgres_cpu)


def run_processes(stack, count: int, target, args_for, calls: int | None = None) -> Phase:
    """Start the processes together and wait for all; `calls`: how many they make, if not one
    per ticket they report claimed."""
    cpu_before, postgres_before = children_cpu_seconds(), postgres_cpu_seconds()
    server_before = stack.server_cpu_seconds()
    out = multiprocessing.Queue()
    processes = [multiprocessing.Process(target=target, args=(*args_for(i), out))
                 for i in range(count)]
    started = time.perf_counter()
    for process in processes:
        process.start()
    claimed = [ticket for _ in processes for ticket in out.get()]
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join()
    return Phase(len(claimed) if calls is None else calls, elapsed,
                 children_cpu_seconds() - cpu_before, stack.server_cpu_seconds() - server_before,
                 postgres_cpu_seconds() - postgres_before, claimed)


def double_claims(stack, githash: str, claimed: list[int]) -> int:
    """Tickets claimed more than once, by the claimers' own lists and by claim_history."""
    seen_twice = len(claimed) - len(set(claimed))
    with stack.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM (SELECT c.ticket_id FROM claim_history c "
                       "JOIN tickets t ON t.id = c.ticket_id WHERE t.service_githash = %s "
                       "GROUP BY c.ticket_id HAVING count(*) > 1) AS twice", (githash,))
        in_database = cursor.fetchone()[0]
    connection.close()
    return seen_twice + in_database


def main(args) -> int:
    with web_stack(workers=args.workers) as stack:
        http_service, sql_service = stack.register_service("ClaimHTTP"), stack.register_service("ClaimSQL")
        seeded = time.perf_counter()
        stack.seed_ready_tickets(http_service, args.tickets)
        stack.seed_ready_tickets(sql_service, args.tickets)
        print(f"seeded 2 x {args.tickets} ready tickets in {time.perf_counter() - seeded:.1f} s")
        with stack.connect() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT id FROM users WHERE email = 'test@example.com'")
            user_id = cursor.fetchone()[0]
        connection.close()

        sql = run_processes(stack, args.claimers, sql_claimer,
                            lambda i: (stack.database_dsn, sql_service, f"sql{i}", user_id))
        http = run_processes(stack, args.claimers, http_claimer,
                             lambda i: (stack.url, http_service, f"http{i}"))
        calls = args.tickets // args.claimers
        floor = run_processes(stack, args.claimers, health_caller, lambda i: (stack.url, calls),
                              calls=calls * args.claimers)
        doubles = double_claims(stack, http_service, http.claimed) + \
            double_claims(stack, sql_service, sql.claimed)
        print(f"machine: {machine_note()}")
        print(f"gunicorn workers: {args.workers} (gthread), claimers: {args.claimers}")
        report(sql, http, floor)
        print(f"double claims: {doubles} (target 0) {'OK' if doubles == 0 else 'FAILED'}")
        complete = len(http.claimed) == len(sql.claimed) == args.tickets
        print(f"all tickets claimed: {complete}")
        return 0 if doubles == 0 and complete else 1


def report(sql: Phase, http: Phase, floor: Phase) -> None:
    print(f"direct SQL : {sql.calls:6d} claims in {sql.seconds:6.2f} s = {sql.rate:8.1f} claims/s")
    print(f"HTTP       : {http.calls:6d} claims in {http.seconds:6.2f} s = {http.rate:8.1f} claims/s")
    print(f"CPU per HTTP claim: server {http.ms_per_call(http.server_cpu):.2f} ms, claimer clients "
          f"{http.ms_per_call(http.client_cpu):.2f} ms, "
          f"PostgreSQL {http.ms_per_call(http.postgres_cpu):.2f} ms")
    print(f"CPU per SQL claim : claimers {sql.ms_per_call(sql.client_cpu):.2f} ms, "
          f"PostgreSQL {sql.ms_per_call(sql.postgres_cpu):.2f} ms")
    print(f"HTTP floor : {floor.calls:6d} GET /healthz in {floor.seconds:6.2f} s = "
          f"{floor.rate:8.1f} calls/s; CPU per call: server "
          f"{floor.ms_per_call(floor.server_cpu):.2f} ms, "
          f"clients {floor.ms_per_call(floor.client_cpu):.2f} ms")
    ratio = http.rate / sql.rate
    print(f"ratio HTTP/SQL: {ratio:.2f} (target >= 0.5) {'OK' if ratio >= 0.5 else 'BELOW TARGET'}")
    least = floor.cpu_ms + sql.ms_per_call(sql.postgres_cpu)  # an empty call, the SQL's own work
    print(f"ceiling: {sql.cpu_ms / least:.2f}, if an HTTP claim cost no more CPU than a /healthz "
          f"call plus the SQL claim's PostgreSQL time; 0.5 leaves the claim's own work "
          f"{2 * sql.cpu_ms - least:.2f} ms of CPU over that, it takes {http.cpu_ms - least:.2f} ms")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=10000)
    parser.add_argument("--claimers", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
