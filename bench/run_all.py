"""`make bench`: every benchmark in turn, each printing its figures against its own baseline.

    .venv/bin/python bench/run_all.py [--quick] [--only claim transfer ...]

`--quick` runs smaller sizes (a smoke run of the scripts, not figures to report).
Exit status: non-zero when any benchmark failed its correctness checks (a double claim, a
corrupted download, a crash); missed speed targets are printed, not failures.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# name -> (script, arguments of a full run, arguments of a quick run)
BENCHMARKS = {
    "claim": ("claim.py", [], ["--tickets", "1000"]),
    "fairness": ("fairness.py", [], ["--batch", "100", "--singles", "5"]),
    "dispatch_latency": ("dispatch_latency.py", [], ["--tickets", "50", "--poll-tickets", "5"]),
    "transfer": ("transfer.py", [], ["--size-mb", "128", "--repeat", "1"]),
    "vs_upstream": ("vs_upstream.py", [], ["--submits", "80", "--claims", "100", "--polls", "160"]),
    "e2e": ("e2e.py", [], ["--tickets", "4", "--baseline-runs", "2"]),
    "inference": ("inference.py", [], ["--quick"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    args = parser.parse_args()
    failed = []
    for name in args.only or BENCHMARKS:
        script, full, quick = BENCHMARKS[name]
        command = [sys.executable, str(BENCH_DIR / script), *(quick if args.quick else full)]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        returncode = subprocess.run(command).returncode
        print(f"=== {name}: exit {returncode} after {time.monotonic() - started:.0f} s", flush=True)
        if returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
