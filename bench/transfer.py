"""Large-file transfer: upload and download of one file through the API, vs a plain file copy.

The web server runs under gunicorn (one gthread worker, so its memory is the one to watch); the
client is dss_client (streamed multipart upload, streamed download). Baseline, in the same run
on the same disk: `shutil.copyfile` of the same file to a new file. Each transfer starts after
`os.sync()` and the write and deletion of a ballast file of the same size (so each writes into
freshly freed memory: see recycle_page_cache), and each upload goes to a new ticket. Each is
repeated (`--repeat`, medians printed, as a busy machine makes single runs noisy). Printed: MB/s
of the copy, the upload and the download, their ratios to the copy (target >= 0.5), the upload's
ceiling (SHA-256's speed on one core over the copy's: the server hashes every stored byte), and
the worker's peak memory growth, VmHWM after the transfers minus VmRSS before (target < 100 MB).
Every download is checked against the original (sha256), and so is the server's recorded sha256.

    .venv/bin/python bench/transfer.py [--size-mb 1024] [--repeat 3]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webstack import machine_note, web_stack  # noqa: E402

MB = 1024 * 1024


def write_random_file(path: Path, size_mb: int) -> None:
    block = os.urandom(16 * MB)
    with open(path, "wb") as out:
        for offset in range(0, size_mb, 16):
            out.write(block[: min(16, size_mb - offset) * MB])
            block = block[1:] + block[:1]  # no two blocks alike


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(4 * MB):
            digest.update(chunk)
    return digest.hexdigest()


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(rest.split()[0])
    return fields


def recycle_page_cache(folder: Path, size_mb: int) -> None:
    """Write and delete `size_mb` of ballast, so that the next transfer writes into memory the
    kernel has just freed. On a VM that hands freed memory back to its host (free page
    reporting, as here), memory not touched for a few seconds faults in again on first write,
    at a few hundred MB/s: whichever transfer came first after a deletion looked fast."""
    ballast = folder / "ballast.bin"
    block = bytes(16 * MB)
    with open(ballast, "wb") as out:
        for _ in range(0, size_mb, 16):
            out.write(block)
    ballast.unlink()


def timed(action, folder: Path, size_mb: int) -> float:
    # Every transfer starts with no dirty pages and no pending discards (this disk is mounted
    # with `discard`) left by the one before, and with as much freshly freed memory.
    os.sync()
    recycle_page_cache(folder, size_mb)
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def sha256_rate(megabytes: int = 256) -> float:
    """MB/s of SHA-256 on one core: the server hashes every byte it stores, so no upload through
    one worker can be faster, whatever the transport."""
    data = os.urandom(16 * MB)
    digest = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(megabytes // 16):
        digest.update(data)
    return megabytes / (time.perf_counter() - started)


def main(args) -> int:
    times: dict[str, list[float]] = {"copy": [], "upload": [], "download": []}
    with web_stack(workers=1) as stack:
        githash = stack.register_service("TransferBench")
        source = stack.workdir / "source.bin"
        write_random_file(source, args.size_mb)
        client = stack.client()
        (worker,) = stack.worker_pids()
        before, intact = memory_kb(worker), True
        runs, fresh = args.warmup + args.repeat, (stack.workdir, args.size_mb + 64)
        for run in range(runs):  # each upload to a new ticket, as each copy to a new file
            copy, download_dir = stack.workdir / f"copy-{run}.bin", stack.workdir / f"downloaded-{run}"
            measured = {"copy": timed(lambda: shutil.copyfile(source, copy), *fresh)}
            ticket_id = client.create_ticket(githash)
            measured["upload"] = timed(lambda: client.upload_input(ticket_id, source), *fresh)
            measured["download"] = timed(lambda: client.download(ticket_id, "input", download_dir),
                                         *fresh)
            if run >= args.warmup:
                for name, seconds in measured.items():
                    times[name].append(seconds)
            intact &= sha256_of(download_dir / source.name) == sha256_of(source) == sha256_of(copy)
            if run < runs - 1:  # the last ticket stays for the sha256 check below
                client.delete(ticket_id)
            copy.unlink()
            shutil.rmtree(download_dir)
        peak = memory_kb(worker)
        with stack.connect() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT sha256 FROM ticket_files WHERE ticket_id = %s", (ticket_id,))
            server_hash_ok = cursor.fetchone()[0] == sha256_of(source)
        connection.close()

    rates = {name: args.size_mb / statistics.median(seconds) for name, seconds in times.items()}
    growth = (peak["VmHWM"] - before["VmRSS"]) / 1024
    print(f"machine: {machine_note()}")
    print(f"file: {args.size_mb} MB, one gunicorn worker (gthread); median of {args.repeat} runs "
          f"after {args.warmup} untimed")
    for name, rate in rates.items():
        ratio = rate / rates["copy"]
        verdict = "" if name == "copy" else \
            f"  ratio {ratio:.2f} (target >= 0.5) {'OK' if ratio >= 0.5 else 'BELOW TARGET'}"
        spread = ", ".join(f"{args.size_mb / seconds:.0f}" for seconds in times[name])
        print(f"{name:9s} {rate:8.1f} MB/s  (runs: {spread}){verdict}")
    hashing = sha256_rate()
    print(f"SHA-256 on one core: {hashing:.0f} MB/s, so the upload's ceiling here is "
          f"{hashing / rates['copy']:.2f} of the copy")
    print(f"worker memory: RSS before {before['VmRSS'] / 1024:.1f} MB, "
          f"peak after the transfers {peak['VmHWM'] / 1024:.1f} MB")
    print(f"peak growth: {growth:.1f} MB (target < 100 MB) {'OK' if growth < 100 else 'ABOVE TARGET'}")
    print(f"every download identical to the source: {intact}; server sha256 matches: {server_hash_ok}")
    return 0 if intact and server_hash_ok else 1


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="file size in MB (default 1 GB)")
    parser.add_argument("--repeat", type=int, default=3, help="transfers of each kind; medians printed")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed rounds first: on a VM, the first writes into memory never "
                             "touched before cost page faults that later rounds do not pay")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
