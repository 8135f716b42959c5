"""`make up`: the whole stack on embedded defaults, for a laptop.

Starts the web server (embedded mode: SQLite in var/; or the database the server's settings
name, e.g. DATABASE_URL), the inference server and the dispatcher as child processes, after
migrating and bootstrapping through the server's CLI: a provider `local`, a
provider user with a reusable token, and the services of `services/<name>/service.json`, each
turned into a local git repository under var/services/ with fixed commit dates so its githash
stays the same on every machine. Safe to run again; Ctrl-C, SIGTERM or SIGHUP stops everything.
"""
from __future__ import annotations

import errno
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from dss_client import DSSClient, DSSError
from dss_client.sdk.register import service_repo

from .config import child_environment, load_devstack_config

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_DIR = REPO_ROOT / "services"
VAR = Path("var")      # relative to the working directory, like the embedded web server's
PROVIDER, PROVIDER_EMAIL = "local", "dispatcher@localhost"
ADMIN_EMAIL = "admin@localhost"
TOKEN_FILE = VAR / "dispatcher" / "provider_token"
START_TIMEOUT = 120


class StackError(RuntimeError):
    pass


class Stopped(Exception):
    """SIGTERM or SIGHUP (a closed terminal): stop the children as Ctrl-C does."""


def _stop_on_signal(signum, _frame):
    raise Stopped(signum)


def server_cli(*args: str, **environment: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dss_server", *args], capture_output=True,
                            text=True, env=child_environment(**environment))
    if result.returncode != 0:
        raise StackError(f"python -m dss_server {' '.join(args)} failed: "
                         f"{(result.stderr or result.stdout).strip()}")
    return result.stdout.strip()


def builtin_descriptors() -> list[Path]:
    """services/<name>/service.json of the dispatcher's services; a folder with a Python
    module holds an SDK service, which `dss serve` registers itself."""
    return [descriptor for descriptor in sorted(SERVICES_DIR.glob("*/service.json"))
            if not any(descriptor.parent.glob("*.py"))]


def bootstrap() -> list[tuple[str, str]]:
    """Provider, provider user, services; returns [(service dir name, githash)]."""
    server_cli("add-provider", PROVIDER)
    server_cli("grant", PROVIDER, PROVIDER_EMAIL)
    registered = []
    for descriptor in builtin_descriptors():
        githash = server_cli("register-service", PROVIDER,
                             str(service_repo(descriptor, VAR / "services")))
        registered.append((descriptor.parent.name, githash.splitlines()[-1]))
    return registered


def provider_token(server_url: str) -> str:
    """The stored reusable token when the server still accepts it, else a new one."""
    if TOKEN_FILE.exists():
        token = TOKEN_FILE.read_text().strip()
        try:
            DSSClient(server_url).login(token)
            return token
        except DSSError:
            pass
    token = server_cli("issue-token", PROVIDER_EMAIL, "--reusable").splitlines()[-1]
    TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    TOKEN_FILE.touch(mode=0o600)
    TOKEN_FILE.write_text(token + "\n")
    return token


class Child:
    def __init__(self, name: str, args: list[str], health_url: str, **environment: str):
        self.name, self.health_url = name, health_url
        self.log_path = VAR / "log" / f"{name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", *args],
                                        env=child_environment(**environment), stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StackError(f"{self.name} exited with {self.process.returncode}; "
                                 f"see {self.log_path}:\n{self.tail()}")
            try:
                if requests.get(self.health_url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise StackError(f"{self.name} did not answer {self.health_url} within {START_TIMEOUT} s")

    def tail(self, lines: int = 15) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def check_ports_free(ports: dict[str, int]) -> None:
    """A second `make up` must not answer its health checks with the first one's processes."""
    for variable, port in ports.items():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("0.0.0.0", port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                raise StackError(f"port {port} ({variable}) is in use: is the stack already "
                                 f"running? Stop it, or set {variable} to a free port") from None


def run() -> int:
    settings = load_devstack_config()
    server_url = f"http://127.0.0.1:{settings.web_port}"
    inference_url = f"http://127.0.0.1:{settings.inference_port}"
    children: list[Child] = []
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    try:
        check_ports_free({"PORT": settings.web_port, "INFERENCE_PORT": settings.inference_port,
                          "DSS_METRICS_PORT": settings.metrics_port})
        print(f"bootstrapping: {server_cli('migrate')} ...", flush=True)
        services = bootstrap()
        children.append(Child("web-server", ["dss_server", "run"], f"{server_url}/healthz",
                              PORT=str(settings.web_port)))
        children.append(Child("inference-server", ["dss_inference"], f"{inference_url}/healthz",
                              INFERENCE_PORT=str(settings.inference_port)))
        for child in children:
            child.wait_healthy()
        token = provider_token(server_url)
        children.append(Child("dispatcher", ["dss_dispatcher"],
                              f"http://127.0.0.1:{settings.metrics_port}/healthz",
                              SERVER_URL=server_url, DSS_PROVIDER_TOKEN=token,
                              DSS_PROVIDER_NAME=PROVIDER, LUNG_SEGMENTATION_SERVICE_URL=inference_url,
                              NODULE_DETECTION_SERVICE_URL=inference_url,
                              DSS_METRICS_PORT=str(settings.metrics_port)))
        children[-1].wait_healthy()
        admin_token = server_cli("create-admin", ADMIN_EMAIL).splitlines()[-1]
        print(banner(server_url, inference_url, settings.metrics_port, admin_token, services,
                     children), flush=True)
        while True:
            for child in children:
                if child.process.poll() is not None:
                    raise StackError(f"{child.name} stopped (exit {child.process.returncode}); "
                                     f"last lines of {child.log_path}:\n{child.tail()}")
            time.sleep(0.5)
    except (KeyboardInterrupt, Stopped):
        pass
    except StackError as exc:
        print(f"make up: {exc}", file=sys.stderr)
        return 1
    finally:
        for signum in (signal.SIGTERM, signal.SIGHUP):  # a second one must not cut the stop short
            signal.signal(signum, signal.SIG_IGN)
        try:
            print("\nstopping ...", flush=True)
        except OSError:  # the terminal is gone (SIGHUP)
            pass
        for child in reversed(children):
            child.stop()
    return 0


def banner(server_url, inference_url, metrics_port, admin_token, services, children) -> str:
    lines = ["", "The DSS stack is up.",
             f"  web server        {server_url}   (log: var/log/web-server.log)",
             f"  inference server  {inference_url}   (log: var/log/inference-server.log)",
             f"  dispatcher        metrics http://127.0.0.1:{metrics_port}/metrics "
             "(log: var/log/dispatcher.log)",
             "  services          " + ", ".join(f"{name} {githash[:8]}" for name, githash in services),
             "",
             f"Admin login token (single use, user {ADMIN_EMAIL}): {admin_token}",
             "",
             "Try it, in another terminal:",
             f"  .venv/bin/dss login {server_url} --token {admin_token}",
             "  .venv/bin/dss demo",
             "",
             "The web pages and ITK-SNAP need a login token of their own (a token works once):",
             f"  .venv/bin/dss admin issue-token {ADMIN_EMAIL} --single-use",
             f"signs you in at {server_url}/login; there, {server_url}/token gives tokens for",
             f"ITK-SNAP (Tools > Distributed Segmentation Service, server {server_url}).",
             "Ctrl-C stops everything."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run())
