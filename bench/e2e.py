"""End-to-end benchmark: N phantom tickets through the whole stack with 2 dispatchers.

Everything runs as real processes on loopback (PostgreSQL, web server, inference server, two
dispatchers). Baseline, measured in the same run: the same phantom sent straight to the
inference server, one job at a time. Printed: end-to-end ticket time (submit -> success seen
by the client), the middleware's overhead per ticket (end-to-end minus the dispatcher's
queue wait - inference stage) at p50/p99, and tickets per minute.

    .venv/bin/python bench/e2e.py [--tickets 20] [--dispatchers 2]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import psycopg2
import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT / "tests"), str(REPO_ROOT / "tests" / "e2e")]

from dss_client.phantom import make_phantom, write_phantom  # noqa: E402
from e2e_stack import Stack  # noqa: E402  (the e2e tests' stack: same processes, same settings)

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def fresh_database() -> tuple[str, str]:
    name = f"dss_bench_{int(time.time())}"
    connection = psycopg2.connect(PG_SERVER)
    connection.autocommit = True
    connection.cursor().execute(f"CREATE DATABASE {name}")
    connection.close()
    return name, f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    connection = psycopg2.connect(PG_SERVER)
    connection.autocommit = True
    connection.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    connection.close()


def inference_only(url: str, image: Path, runs: int) -> list[float]:
    """Baseline: submit and poll the inference server directly (no DSS)."""
    times = []
    for _ in range(runs):
        started = time.monotonic()
        with open(image, "rb") as body:
            job = requests.post(f"{url}/lung_segmentation/inference", params={"format": "nii.gz"},
                                files={"itk_image": (image.name, body)}, timeout=300).json()["Endpoint"]
        while requests.get(f"{url}{job}", timeout=300).status_code == 202:
            time.sleep(0.05)
        times.append(time.monotonic() - started)
    return times


def _seconds(atime) -> float:
    """A log entry's time (Unix seconds, or 'YYYY-MM-DD hh:mm:ss.ffffff')."""
    try:
        return float(atime)
    except ValueError:
        return datetime.fromisoformat(str(atime)).timestamp()


def submit_and_wait(user, image: Path, service: str) -> tuple[int, float, float, float]:
    """(ticket id, ticket time, queue wait, submit time): the wait from `ready` to the claim
    is capacity, not overhead, so it is taken from the server's log of the ticket."""
    started = time.monotonic()
    ticket_id = user.submit_workspace(image, service)
    submitted = time.monotonic() - started
    while (status := user.status(ticket_id)) not in ("success", "failed"):
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    log = user.log(ticket_id)
    if status != "success":
        raise RuntimeError(f"ticket {ticket_id} failed: {[e.message for e in log]}")
    queued = next(_seconds(e.atime) for e in log if "queued for processing" in e.message)
    claimed = next(_seconds(e.atime) for e in log if "claimed by provider" in e.message)
    return ticket_id, elapsed, claimed - queued, submitted


def dispatcher_timings(logs: list[Path]) -> dict[int, dict[str, float]]:
    """{ticket id: stage seconds} from the dispatchers' JSON log lines."""
    found = {}
    for path in logs:
        for line in path.read_text().splitlines():
            if line.startswith("{") and '"timings"' in line:
                record = json.loads(line)
                found[record["ticket"]] = record["timings"]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=20)
    parser.add_argument("--dispatchers", type=int, default=2)
    parser.add_argument("--baseline-runs", type=int, default=5)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dss-bench-"))
    database, database_url = fresh_database()
    stack = Stack(tmp, database_url)
    try:
        stack.start()
        image = tmp / "phantom_ct.nii.gz"
        write_phantom(image, make_phantom())
        baseline = inference_only(stack.inference_url, image, args.baseline_runs)
        dispatchers = [stack.dispatcher(f"bench{i}", DSS_LOG_JSON="1", DSS_CLAIM_WAIT="20")
                       for i in range(args.dispatchers)]
        users = [stack.user() for _ in range(args.tickets)]
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.tickets) as pool:
            results = list(pool.map(lambda u: submit_and_wait(u, image, "LungSegmentation"), users))
        wall = time.monotonic() - started
        for dispatcher in dispatchers:
            dispatcher.stop()
        timings = dispatcher_timings([d.log_path for d in dispatchers])
    finally:
        stack.stop()
        drop_database(database)

    end_to_end = [seconds for _, seconds, _, _ in results]
    overhead = [seconds - queued - timings[ticket]["inference"]
                for ticket, seconds, queued, _ in results if ticket in timings]
    submit = [submitted for _, _, _, submitted in results]
    in_dispatcher = [sum(timings[t].values()) - timings[t]["inference"] for t, *_ in results
                     if t in timings]
    print(f"end to end: {args.tickets} LungSegmentation tickets of a 96x96x64 phantom, "
          f"{args.dispatchers} dispatchers (1 worker each), 1 inference server")
    print(f"  baseline (inference server alone, sequential): p50 {statistics.median(baseline):.2f} s")
    print(f"  ticket time (submit -> success): p50 {percentile(end_to_end, 50):.2f} s, "
          f"p99 {percentile(end_to_end, 99):.2f} s "
          f"({percentile(end_to_end, 50) / statistics.median(baseline):.1f}x the baseline; "
          f"includes queueing behind the other tickets)")
    print(f"  middleware overhead (ticket time - queue wait - inference stage): p50 {percentile(overhead, 50):.2f} s, "
          f"p99 {percentile(overhead, 99):.2f} s")
    print(f"    of which the client's submit (export, upload, ready; {args.tickets} at once): "
          f"p50 {percentile(submit, 50):.2f} s, p99 {percentile(submit, 99):.2f} s")
    print(f"    of which dispatcher stages (download, workspace, upload): p50 "
          f"{percentile(in_dispatcher, 50):.2f} s, p99 {percentile(in_dispatcher, 99):.2f} s")
    rest = [o - s - d for o, s, d in zip(overhead, submit, in_dispatcher)]
    print(f"    rest (claim hand-over, status polling): p50 {percentile(rest, 50):.2f} s")
    print(f"  throughput: {args.tickets / wall * 60:.1f} tickets/min "
          f"(baseline: {60 / statistics.median(baseline):.1f} inference jobs/min, sequential)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
