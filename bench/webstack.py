"""What the web-server benchmarks share: a fresh PostgreSQL database, the web server under
gunicorn (the deployment's gunicorn.conf.py: gthread workers) in NOAUTH mode, a registered
service, and fast SQL seeding of ready tickets."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import requests

from dss_client import DSSClient

REPO_ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = REPO_ROOT / "web-server" / "gunicorn.conf.py"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
PROVIDER = "benchlab"
NOAUTH_ADMIN = "test@example.com"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, q in 0..100."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_repo(workdir: Path, name: str) -> Path:
    """A git repository holding a service.json, as a provider registers it."""
    repo = workdir / f"{name}-repo"
    repo.mkdir()
    (repo / "service.json").write_text(json.dumps(
        {"name": name, "version": "1.0.0", "shortdesc": f"{name} (benchmark)", "tags": []}))
    git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=b@example.org"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "service.json"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", name], check=True)
    return repo


def _admin_connection(pg_server: str):
    connection = psycopg2.connect(pg_server)
    connection.autocommit = True
    return connection


@dataclass
class WebStack:
    url: str
    database_dsn: str  # psycopg2 DSN of the bench database
    workdir: Path
    server: subprocess.Popen
    services: dict[str, str] = field(default_factory=dict)  # name -> githash

    def client(self) -> DSSClient:
        return DSSClient(self.url)  # cookieless: the NOAUTH admin

    def connect(self):
        return psycopg2.connect(self.database_dsn)

    def worker_pids(self) -> list[int]:
        """gunicorn's worker processes (children of the master)."""
        children = Path(f"/proc/{self.server.pid}/task/{self.server.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def server_cpu_seconds(self) -> float:
        """User + system CPU time used so far by the gunicorn workers."""
        ticks = sum(_cpu_ticks(_stat_fields(pid)) for pid in self.worker_pids())
        return ticks / os.sysconf("SC_CLK_TCK")

    def register_service(self, name: str) -> str:
        repo = service_repo(self.workdir, name)
        self.services[name] = self.client().register_service(PROVIDER, str(repo))
        return self.services[name]

    def lift_ticket_limit(self) -> None:
        """The benchmarks open thousands of tickets: give the NOAUTH admin the largest tier."""
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute("UPDATE users SET tier = (SELECT tier FROM user_tiers "
                           "ORDER BY max_tickets DESC LIMIT 1) WHERE email = %s", (NOAUTH_ADMIN,))
        connection.close()

    def seed_ready_tickets(self, githash: str, count: int) -> None:
        """`count` ready tickets of the NOAUTH admin, inserted in one statement each table."""
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT id FROM users WHERE email = %s", (NOAUTH_ADMIN,))
            user_id = cursor.fetchone()[0]
            cursor.execute(
                "WITH new AS (INSERT INTO tickets (user_id, service_githash, status, attempts) "
                "SELECT %s, %s, 'ready', 0 FROM generate_series(1, %s) RETURNING id) "
                "INSERT INTO ticket_history (ticket_id, status, atime) "
                "SELECT id, 'ready', now() AT TIME ZONE 'UTC' FROM new",
                (user_id, githash, count))
        connection.close()


@contextmanager
def web_stack(workers: int = 2, pg_server: str = PG_SERVER, extra_env: dict | None = None):
    """A fresh database and a gunicorn-served web server; all removed at exit."""
    name = f"dss_bench_{uuid.uuid4().hex[:10]}"
    admin = _admin_connection(pg_server)
    admin.cursor().execute(f"CREATE DATABASE {name}")
    workdir = Path(tempfile.mkdtemp(prefix="dss-bench-"))
    port = free_port()
    database_url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    env = {**os.environ, "DATABASE_URL": database_url, "PORT": str(port),
           "ITK_SNAP_SERVER_NOAUTH": "1", "DSS_DATASTORE": str(workdir / "datastore"),
           "WEB_CONCURRENCY": str(workers), **(extra_env or {})}
    server = None
    try:
        subprocess.run([sys.executable, "-m", "dss_server", "migrate"], env=env, cwd=workdir,
                        check=True, capture_output=True, timeout=300)
        log = open(workdir / "gunicorn.log", "wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "--access-logfile", "/dev/null"],
            env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, server, workdir / "gunicorn.log")
        stack = WebStack(url, f"dbname={name} user=postgres host=127.0.0.1 port=5432", workdir, server)
        client = stack.client()
        client.add_provider(PROVIDER)
        client.add_provider_user(PROVIDER, NOAUTH_ADMIN)
        stack.lift_ticket_limit()
        yield stack
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


def _wait_ready(url: str, server: subprocess.Popen, log: Path, timeout: float = 180,
                probe: str = "readyz") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/{probe}", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not get ready in {timeout} s:\n{log.read_text()[-3000:]}")


def _stat_fields(pid: int | str) -> list[str]:
    """/proc/<pid>/stat after the command name: [0] state, [1] ppid, [11:15] utime, stime,
    cutime, cstime (clock ticks)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_ticks(fields: list[str], with_children: bool = False) -> int:
    ticks = int(fields[11]) + int(fields[12])
    return ticks + (int(fields[13]) + int(fields[14]) if with_children else 0)


def postgres_cpu_seconds() -> float:
    """CPU time used so far by the local PostgreSQL server: its live processes, plus the
    backends that have exited (counted in the postmaster's children times)."""
    processes = {}  # pid -> stat fields
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                processes[comm.parent.name] = _stat_fields(comm.parent.name)
        except OSError:
            pass  # a process that ended meanwhile
    total = sum(_cpu_ticks(fields, with_children=fields[1] not in processes)  # the postmaster
                for fields in processes.values())
    return total / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU time of this script's finished child processes (the benchmark's clients)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_note() -> str:
    return (f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} "
            f"(client, server and PostgreSQL share them)")
