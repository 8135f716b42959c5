"""Helpers shared by every test folder: free ports, real server processes, sample data."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
CT_SAMPLES = Path(os.environ.get("DSS_CT_SAMPLES", REPO_ROOT.parent / "shared" / "ct-samples"))


def default_sigint() -> None:
    """preexec_fn of a child the test sends SIGINT (Ctrl-C): a child inherits an ignored SIGINT
    (`make test &`, nohup), and Python then installs no KeyboardInterrupt handler at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class PgCluster:
    """A throwaway PostgreSQL server (initdb/pg_ctl, trust auth) on a free port, in a folder of
    /tmp the postgres user can reach; for tests that restart it or when no server answers. The
    caller stops it."""

    def __init__(self):
        self.initdb, self.pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
        if not (self.initdb and self.pg_ctl):
            raise FileNotFoundError("initdb/pg_ctl are not installed")
        root = Path(tempfile.mkdtemp(prefix="dss-pg-"))
        self.root, self.data, self.port = root, root / "pgdata", free_port()
        self.run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.run_as:
            shutil.chown(root, "postgres")
        subprocess.run(self.run_as + [self.initdb, "-D", str(self.data), "-U", "postgres",
                                      "-A", "trust"], check=True, capture_output=True)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._pg_ctl("start")

    def _pg_ctl(self, *args: str) -> None:
        # -l: the server must not hold this process's pipes open (run would wait for EOF)
        subprocess.run(self.run_as + [self.pg_ctl, "-D", str(self.data), "-w",
                                      "-l", str(self.root / "server.log"), "-o",
                                      f"-p {self.port} -k {self.root} -h 127.0.0.1", *args],
                       check=True, capture_output=True)

    def restart(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "restart")

    def stop(self) -> None:
        subprocess.run(self.run_as + [self.pg_ctl, "-D", str(self.data), "-m", "immediate",
                                      "stop"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Wait until `url` answers 200; fail early if `process` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # still starting (a busy machine)
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s")


class ServerProcess:
    """A real server started as a child process, stopped (and reaped) on exit."""

    def __init__(self, args: list[str], env: dict[str, str], health_url: str,
                 log_path: Path, cwd: Path | None = None, timeout: float = 60.0):
        self.args, self.health_url, self.log_path = args, health_url, log_path
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            args, env={**os.environ, **env}, cwd=cwd or REPO_ROOT,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_http(health_url, timeout, self.process)
        except Exception as error:
            self.stop()
            raise RuntimeError(f"{args} failed to start ({error}); log:\n{self.log_tail()}") from error

    def log_tail(self, chars: int = 4000) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        """SIGKILL the whole process group: the crash a test wants to survive."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


PYTHON = sys.executable


def service_repo(path: Path, descriptor: dict) -> tuple[Path, str]:
    """A git repository made with `git init` at `path`, holding `descriptor` as service.json, as
    an admin registers it; returns the repository and its commit (the service's githash)."""
    path.mkdir(parents=True)
    (path / "service.json").write_text(json.dumps(descriptor))
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@example.org",
           "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    subprocess.run(git + ["add", "service.json"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "service"], check=True)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    return path, commit


def wait_for_status(client, ticket_id: int, wanted, timeout: float = 180.0) -> str:
    """Poll a ticket (through a logged-in dss_client.DSSClient) until its status is in `wanted`."""
    wanted = {wanted} if isinstance(wanted, str) else set(wanted)
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = client.status(ticket_id)
        if status in wanted:
            return status
        time.sleep(0.2)
    raise AssertionError(f"ticket {ticket_id} is {status!r}, not {wanted} after {timeout} s; "
                         f"log: {[e.message for e in client.log(ticket_id)]}")


def ensure_provider(db, name: str) -> None:
    """The provider row `name` exists (web-server database session `db`)."""
    from dss_server.models import Provider

    if db.get(Provider, name) is None:
        db.add(Provider(name=name))
        db.flush()


def insert_service(db, descriptor: dict, provider: str | None = None) -> str:
    """A service inserted straight into the web server's database (git registration has its own
    tests), offered by `provider` when given; returns its random githash. The caller commits."""
    import secrets

    from dss_server.models import ProviderService, Service

    githash = secrets.token_hex(20)
    db.add(Service(githash=githash, name=descriptor["name"], version=descriptor["version"],
                   shortdesc=descriptor.get("shortdesc"), json=json.dumps(descriptor)))
    if provider:
        ensure_provider(db, provider)
        db.add(ProviderService(provider_name=provider, service_githash=githash))
    return githash
