"""Claim throughput: N ready tickets emptied by 8 concurrent claimers, over HTTP and by direct SQL.

HTTP: 8 claimer processes call `POST /api/pro/services/claims` (dss_client) against the web
server under gunicorn (gthread workers) until the answer is `None`. Baseline, in the same run on
the same database: 8 processes with their own PostgreSQL connection run the claim transaction
straight in SQL - the server's own `FOR UPDATE SKIP LOCKED` select (compiled from its models),
then the same writes a claim makes (ticket row, claim and status history, log line). Printed:
claims/s of both, the ratio (target: HTTP >= 0.5 x SQL) and the double claims found (target 0).

    .venv/bin/python bench/claim.py [--tickets 10000] [--claimers 8] [--workers 2]
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

import psycopg2
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from dss_client import DSSClient
from dss_server.models import Ticket

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webstack import children_cpu_seconds, machine_note, postgres_cpu_seconds, web_stack  # noqa: E402


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
    while (claim := client.claim([githash], provider="bench", code=name)) is not None:
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


def run_claimers(count: int, target, args_for) -> tuple[float, float, float, list[int]]:
    """Start the claimer processes together: seconds until all are done, their CPU seconds and
    PostgreSQL's meanwhile, and every ticket id they claimed."""
    cpu_before, postgres_before = children_cpu_seconds(), postgres_cpu_seconds()
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
    return (elapsed, children_cpu_seconds() - cpu_before,
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

        sql_seconds, sql_client_cpu, sql_postgres_cpu, sql_claimed = run_claimers(
            args.claimers, sql_claimer, lambda i: (stack.database_dsn, sql_service, f"sql{i}", user_id))
        server_cpu = stack.server_cpu_seconds()
        http_seconds, http_client_cpu, http_postgres_cpu, http_claimed = run_claimers(
            args.claimers, http_claimer, lambda i: (stack.url, http_service, f"http{i}"))
        server_cpu = stack.server_cpu_seconds() - server_cpu

        sql_rate, http_rate = len(sql_claimed) / sql_seconds, len(http_claimed) / http_seconds
        doubles = double_claims(stack, http_service, http_claimed) + \
            double_claims(stack, sql_service, sql_claimed)
        ratio = http_rate / sql_rate
        print(f"machine: {machine_note()}")
        print(f"gunicorn workers: {args.workers} (gthread), claimers: {args.claimers}")
        print(f"direct SQL : {len(sql_claimed):6d} claims in {sql_seconds:6.2f} s = {sql_rate:8.1f} claims/s")
        print(f"HTTP       : {len(http_claimed):6d} claims in {http_seconds:6.2f} s = {http_rate:8.1f} claims/s")
        per_http, per_sql = 1000 / max(1, len(http_claimed)), 1000 / max(1, len(sql_claimed))
        print(f"CPU per HTTP claim: server {server_cpu * per_http:.2f} ms, claimer clients "
              f"{http_client_cpu * per_http:.2f} ms, PostgreSQL {http_postgres_cpu * per_http:.2f} ms")
        print(f"CPU per SQL claim : claimers {sql_client_cpu * per_sql:.2f} ms, "
              f"PostgreSQL {sql_postgres_cpu * per_sql:.2f} ms")
        print(f"ratio HTTP/SQL: {ratio:.2f} (target >= 0.5) {'OK' if ratio >= 0.5 else 'BELOW TARGET'}")
        print(f"double claims: {doubles} (target 0) {'OK' if doubles == 0 else 'FAILED'}")
        complete = len(http_claimed) == len(sql_claimed) == args.tickets
        print(f"all tickets claimed: {complete}")
        return 0 if doubles == 0 and complete else 1


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=10000)
    parser.add_argument("--claimers", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
