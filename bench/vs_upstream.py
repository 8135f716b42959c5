"""This server against the original `itksnap-dss-server` 0.2.0, side by side in one run.

Both servers run as deployed on this machine: ours migrated, under gunicorn with
`web-server/gunicorn.conf.py` on a fresh PostgreSQL database (dropped at the end); the original
(pinned in tests/requirements.txt) as `itksnap-dss-server --server --noauth` on its SQLite file.
Both in NOAUTH mode: every client is the test admin, keeping the session cookie it was given
(as ITK-SNAP keeps its cookie jar). The same client code (dss_client) drives both, from the
same pool of client processes, and measures for each server in turn:

- status polls/s: what ITK-SNAP does while a ticket runs, every 4 s: `GET api/tickets` and
  `GET api/tickets/<id>/detail?since=<last log id>`; one poll = both requests. Each client polls
  its own claimed ticket, which has a log message and progress;
- submit requests/s: create a ticket, upload a small file, mark it ready (3 requests a ticket);
- claims/s: batches of `--batch` ready tickets (made between the timed phases) emptied by the
  claimer processes (`POST api/pro/services/claims`) until the answer is `None`.

And, for ours only, the ceiling of this machine: empty requests/s (`GET /healthz`, which
touches no database) from the same client processes through the same gunicorn. No request can
be faster, so it bounds each ratio: a poll is two requests, a claim one; the summary prints
each target beside the most this ceiling would allow.

Both users get the largest tier of their server (as bench/webstack.py does for ours), so that
the open-ticket quota does not end a phase; the quota is still counted on every create.
Checks (a failure exits 1): every submitted ticket listed as ready with its file, one file
downloaded back byte for byte, every batch claimed exactly once (claimers' lists, then each
ticket's status), polls that saw the status, progress and log message posted.

    .venv/bin/python bench/vs_upstream.py [--clients 8] [--submits 800] [--claims 800]
                                          [--batch 50] [--polls 2000] [--workers 2]
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dss_client import DSSClient
from dss_client.errors import DSSError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webstack import (  # noqa: E402
    NOAUTH_ADMIN,
    PROVIDER,
    _cpu_ticks,
    _stat_fields,
    _wait_ready,
    free_port,
    machine_note,
    service_repo,
    web_stack,
)

UPSTREAM = [sys.executable, "-m", "itksnap_dss_server"]  # the `itksnap-dss-server` script
PAYLOAD_BYTES = 16 * 1024  # the "small file" of the submit path
TARGETS = {"status polls": 10, "submit requests": 5, "claims": 10}
ORIGINAL = "original 0.2.0"
MAX_ERRORS = 50  # a client gives up its task after so many failed requests


@dataclass
class Server:
    name: str
    url: str
    pids: Callable[[], list[int]]  # the server's processes whose CPU is counted
    register_service: Callable[[str], str]  # name -> githash

    def cpu_seconds(self) -> float:
        return sum(_cpu_ticks(_stat_fields(pid)) for pid in self.pids()) / os.sysconf("SC_CLK_TCK")


@contextmanager
def ours(workers: int):
    with web_stack(workers=workers) as stack:
        yield Server("this server", stack.url, stack.worker_pids, stack.register_service)


@contextmanager
def original():
    """`itksnap-dss-server` on a fresh SQLite file and datastore, removed at exit."""
    workdir = Path(tempfile.mkdtemp(prefix="dss-upstream-"))
    port = free_port()
    sqlite_path = workdir / "alfabis.sqlite3"
    log = open(workdir / "server.log", "wb")
    server = subprocess.Popen(
        [*UPSTREAM, "--server", "--port", str(port), "--cookie-domain", "", "--noauth",
         "--sqlite-path", str(sqlite_path), "--datastore-root", str(workdir / "datastore")],
        cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, server, workdir / "server.log", probe="api/login")
        with sqlite3.connect(sqlite_path) as connection:  # the largest tier, as for ours
            connection.execute("UPDATE users SET tier = (SELECT tier FROM user_tiers ORDER BY "
                               "max_tickets DESC LIMIT 1) WHERE email = ?", (NOAUTH_ADMIN,))
        client = DSSClient(url)
        client.add_provider(PROVIDER)
        client.add_provider_user(PROVIDER, NOAUTH_ADMIN)

        def register_service(name: str) -> str:
            return client.register_service(PROVIDER, str(service_repo(workdir, name)))

        yield Server(ORIGINAL, url, lambda: [server.pid], register_service)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


# -- client processes: each keeps one DSSClient (and its session cookie) per server ------------

def client_process(tasks, results) -> None:
    """Runs tasks until None; puts (results, failed requests) for each, even if it crashed."""
    clients = {}
    while (task := tasks.get()) is not None:
        kind, url, *args = task
        client = clients.setdefault(url, DSSClient(url))
        errors: list[str] = []
        try:
            results.put((JOBS[kind](client, errors, *args), errors))
        except Exception as exc:  # noqa: BLE001 - reported, so that the phase ends
            results.put(([], errors + [f"{kind} crashed: {exc!r}"]))


def attempt(errors: list[str], call, *args):
    """The call's answer, or None with the error noted (the original answers 500 when its
    SQLite database stays locked for 5 s); too many errors end the task."""
    try:
        return call(*args)
    except DSSError as exc:
        errors.append(str(exc)[:200])
        if len(errors) >= MAX_ERRORS:
            raise
        return None


def submit_job(client: DSSClient, errors: list, githash: str, count: int, payload: str) -> list:
    """Tickets acknowledged ready (a failed request drops its ticket)."""
    submitted = []
    for _ in range(count):
        ticket_id = attempt(errors, client.create_ticket, githash)
        if ticket_id is not None and attempt(errors, client.upload_input, ticket_id, payload) \
                and attempt(errors, client.mark_ready, ticket_id):
            submitted.append(ticket_id)
    return submitted


def claim_job(client: DSSClient, errors: list, githash: str, code: str) -> list[int]:
    claimed = []
    while True:
        before = len(errors)
        claim = attempt(errors, client.claim, [githash], PROVIDER, code)
        if claim is None and len(errors) == before:
            return claimed
        if claim is not None:
            claimed.append(claim.ticket_id)


def poll_job(client: DSSClient, errors: list, ticket_id: int, count: int) -> list[tuple]:
    """`count` polls as ITK-SNAP makes them; returns what the last one saw."""
    since, seen, listed, detail = 0, [], {}, {"status": None, "progress": None}
    for _ in range(count):
        tickets = attempt(errors, client.tickets)
        listed = {ticket.id: ticket.status for ticket in tickets} if tickets else listed
        detail = attempt(errors, client.detail, ticket_id, since) or detail
        seen += [entry["message"] for entry in detail.get("log", [])]
        since = max([since] + [entry["id"] for entry in detail.get("log", [])])
    return [(ticket_id, listed.get(ticket_id), detail["status"], detail["progress"], seen)]


def empty_job(client: DSSClient, errors: list, count: int) -> list[int]:
    for _ in range(count):
        attempt(errors, client._get, "healthz")  # no public call: clients have no use for it
    return [count]


JOBS = {"submit": submit_job, "claim": claim_job, "poll": poll_job, "empty": empty_job}
# HTTP requests one operation makes: the ceiling of empty requests/s bounds each rate by this
REQUESTS_PER = {"status polls": 2, "submit requests": 1, "claims": 1}


class Crew:
    """Client processes started once, given one task each per phase."""

    def __init__(self, size: int):
        self.results = multiprocessing.Queue()
        self.queues = [multiprocessing.Queue() for _ in range(size)]
        self.processes = [multiprocessing.Process(target=client_process, args=(q, self.results))
                          for q in self.queues]
        for process in self.processes:
            process.start()

    def run(self, tasks: list[tuple], errors: list[str]) -> tuple[list, float]:
        """One task per process, all at once: their results (concatenated) and the wall time;
        failed requests are added to `errors`."""
        started = time.perf_counter()
        for queue, task in zip(self.queues, tasks):
            queue.put(task)
        results = []
        for _ in tasks:
            items, failed = self.results.get()
            results += items
            errors += failed
        return results, time.perf_counter() - started

    def close(self) -> None:
        for queue in self.queues:
            queue.put(None)
        for process in self.processes:
            process.join()


# -- phases --------------------------------------------------------------------------------

@dataclass
class Figure:
    count: int  # operations: polls, submit requests, claims
    seconds: float
    server_cpu: float
    errors: int = 0  # failed requests

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.server_cpu / self.count


def make_ready(client: DSSClient, githash: str, count: int) -> list[int]:
    tickets = [client.create_ticket(githash) for _ in range(count)]
    for ticket_id in tickets:
        client.mark_ready(ticket_id)
    return tickets


def measure_polls(server: Server, crew: Crew, polls: int, failures: list) -> Figure:
    client = DSSClient(server.url)
    githash = server.register_service("PollBench")
    tickets = make_ready(client, githash, len(crew.queues))
    for ticket_id in tickets:
        assert client.claim([githash], provider=PROVIDER, code="poll") is not None
        client.log_message(ticket_id, "info", f"halfway {ticket_id}")
        client.set_progress(ticket_id, 0, 1, 0.5)
    each = polls // len(tickets)
    cpu = server.cpu_seconds()
    errors: list[str] = []
    seen, seconds = crew.run([("poll", server.url, ticket_id, each) for ticket_id in tickets],
                             errors)
    figure = Figure(each * len(tickets) - len(errors), seconds, server.cpu_seconds() - cpu,
                    len(errors))
    for ticket_id, listed, status, progress, messages in seen:
        if (listed, status, progress) != ("claimed", "claimed", 0.5) or \
                f"halfway {ticket_id}" not in messages:
            failures.append(f"{server.name}: poll of ticket {ticket_id} saw {listed}, {status}, "
                            f"{progress}, {messages}")
    return figure


def measure_submits(server: Server, crew: Crew, submits: int, failures: list) -> Figure:
    githash = server.register_service("SubmitBench")
    payload = Path(tempfile.mkdtemp(prefix="dss-payload-")) / "layer_000_bench.nii.gz"
    payload.write_bytes(os.urandom(PAYLOAD_BYTES))
    each = submits // len(crew.queues)
    cpu = server.cpu_seconds()
    errors: list[str] = []
    submitted, seconds = crew.run([("submit", server.url, githash, each, str(payload))
                                   for _ in crew.queues], errors)
    figure = Figure(3 * len(submitted), seconds, server.cpu_seconds() - cpu, len(errors))
    client = DSSClient(server.url)
    listed = {ticket.id: ticket.status for ticket in client.tickets()}
    lost = [t for t in submitted if listed.get(t) != "ready"
            or [f.name for f in client.files(t, "input")] != [payload.name]]
    if lost or len(set(submitted)) != len(submitted):
        failures.append(f"{server.name}: {len(lost)} acknowledged tickets not ready with their "
                        f"file, {len(submitted) - len(set(submitted))} ids given twice")
    downloaded = client.download(submitted[-1], "input", payload.parent / "back")
    if [path.read_bytes() for path in downloaded] != [payload.read_bytes()]:
        failures.append(f"{server.name}: ticket {submitted[-1]}'s file came back different")
    subprocess.run(["rm", "-rf", str(payload.parent)], check=False)
    return figure


def measure_claims(server: Server, crew: Crew, claims: int, batch: int, failures: list) -> Figure:
    client = DSSClient(server.url)
    githash = server.register_service("ClaimBench")
    count, seconds, cpu_seconds, errors = 0, 0.0, 0.0, []
    for _ in range(max(1, claims // batch)):
        tickets = make_ready(client, githash, batch)
        cpu = server.cpu_seconds()
        claimed, elapsed = crew.run([("claim", server.url, githash, f"c{i}")
                                     for i in range(len(crew.queues))], errors)
        cpu_seconds += server.cpu_seconds() - cpu
        count, seconds = count + len(claimed), seconds + elapsed
        if sorted(claimed) != sorted(tickets):
            failures.append(f"{server.name}: batch {tickets[0]}..: {len(claimed)} claims for "
                            f"{len(tickets)} tickets, {len(claimed) - len(set(claimed))} doubles")
        not_claimed = [t for t in tickets if client.status(t) != "claimed"]
        if not_claimed:
            failures.append(f"{server.name}: tickets {not_claimed} not claimed")
    return Figure(count, seconds, cpu_seconds, len(errors))


def measure_ceiling(server: Server, crew: Crew, requests: int) -> Figure:
    each = requests // len(crew.queues)
    cpu = server.cpu_seconds()
    errors: list[str] = []
    counts, seconds = crew.run([("empty", server.url, each) for _ in crew.queues], errors)
    figure = Figure(sum(counts) - len(errors), seconds, server.cpu_seconds() - cpu, len(errors))
    report(server, "empty requests", figure, "(GET /healthz: the ceiling of any request here)")
    return figure


def report(server: Server, what: str, figure: Figure, note: str = "") -> None:
    print(f"{server.name:15s} {what:16s}: {figure.count:6d} in {figure.seconds:6.2f} s = "
          f"{figure.rate:7.1f}/s; server CPU {figure.cpu_ms:.2f} ms each; "
          f"failed requests {figure.errors} {note}".rstrip(), flush=True)


def measure(server: Server, crew: Crew, args, failures: list) -> dict[str, Figure]:
    figures = {"status polls": measure_polls(server, crew, args.polls, failures),
               "submit requests": measure_submits(server, crew, args.submits, failures),
               "claims": measure_claims(server, crew, args.claims, args.batch, failures)}
    for what, figure in figures.items():
        report(server, what, figure)
        if figure.errors:
            failures.append(f"{server.name}: {figure.errors} {what} requests failed")
    return figures


def main(args) -> int:
    failures: list[str] = []
    crew = Crew(args.clients)
    try:
        with original() as server:
            theirs = measure(server, crew, args, failures)
        with ours(args.workers) as server:
            mine = measure(server, crew, args, failures)
            ceiling = measure_ceiling(server, crew, args.polls * 2)  # the poll phase's requests
    finally:
        crew.close()
    print(f"machine: {machine_note()}")
    print(f"clients: {args.clients} processes; this server: {args.workers} gunicorn workers "
          f"(gthread) on PostgreSQL; original: one web.py process on SQLite; both NOAUTH")
    for what, target in TARGETS.items():
        ratio = mine[what].rate / theirs[what].rate
        print(f"{what:16s}: {mine[what].rate:7.1f} vs {theirs[what].rate:7.1f}/s = {ratio:5.2f}x "
              f"(target >= {target}x) {'OK' if ratio >= target else 'BELOW TARGET'}; "
              f"empty requests would reach {ceiling.rate / REQUESTS_PER[what] / theirs[what].rate:.1f}x")
    ours_failed = [failure for failure in failures if not failure.startswith(ORIGINAL)]
    for failure in failures:  # the original's own failures are figures, not ours to fix
        print(f"{'FAILED' if failure in ours_failed else 'original failed'}: {failure}")
    print(f"checks of this server: {'all passed' if not ours_failed else f'{len(ours_failed)} failed'}")
    return 1 if ours_failed else 0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="client processes")
    parser.add_argument("--submits", type=int, default=800, help="tickets submitted per server")
    parser.add_argument("--claims", type=int, default=800, help="tickets claimed per server")
    parser.add_argument("--batch", type=int, default=50, help="ready tickets per claim batch")
    parser.add_argument("--polls", type=int, default=2000, help="status polls per server")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of ours")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
