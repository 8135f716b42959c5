"""What the compatibility tests share: a real web server bootstrapped with the `dss_server`
command line (fresh PostgreSQL database), inference server and dispatchers started on demand,
and an in-memory keyring for the official client (`itksnap_dss`), which keeps its session there."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import keyring.backend

from dss_client import DSSClient
from dss_dispatcher.devstack import service_repo
from helpers import PYTHON, REPO_ROOT, ServerProcess, free_port

PROVIDER, PROVIDER_EMAIL = "compat-lab", "robot@compat.test"
USER_EMAIL = "user@compat.test"
# services only the official client works on (no dispatcher knows them): name -> version
TEST_SERVICES = {"CompatEcho": "1.0.0", "CompatEchoTwo": "0.3.1"}


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring that lives in this process: the official client stores its session id here."""
    priority = 1

    def __init__(self):
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.passwords.get((service, username))

    def set_password(self, service, username, password):
        self.passwords[(service, username)] = password

    def delete_password(self, service, username):
        self.passwords.pop((service, username), None)


def echo_service_repo(root: Path, name: str, version: str) -> Path:
    """A git repository with a service.json, as an admin registers a new service."""
    descriptor = root / "descriptors" / name / "service.json"
    descriptor.parent.mkdir(parents=True)
    descriptor.write_text(json.dumps({
        "name": name, "version": version, "shortdesc": f"{name}: echoes its input",
        "longdesc": "Processed by the official itksnap-dss client in the compat tests.",
        "url": "https://example.org", "tags": [
            {"name": "CT", "type": "MainImage", "hint": "any image", "required": True}]}))
    return service_repo(descriptor, root / "service-repos")


class CompatStack:
    """Web server process on a free port; inference server and dispatchers on demand."""

    def __init__(self, tmp: Path, database_url: str):
        self.tmp = tmp
        self.server_env = {"DATABASE_URL": database_url, "DSS_DATASTORE": str(tmp / "datastore"),
                           "DSS_SECRET_KEY": "compat-" + "x" * 40, "PORT": str(free_port())}
        self.url = f"http://127.0.0.1:{self.server_env['PORT']}"
        self.processes: list[ServerProcess] = []
        self.inference_url: str | None = None
        self.githashes: dict[str, str] = {}
        self._user_session: str | None = None

    def cli(self, *args: str) -> str:
        """`python -m dss_server ARGS`; the last line it prints."""
        result = subprocess.run([PYTHON, "-m", "dss_server", *args], cwd=self.tmp, text=True,
                                capture_output=True, env=_child_env(self.server_env), timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        self.cli("migrate")
        self.cli("add-provider", PROVIDER)
        self.cli("grant", PROVIDER, PROVIDER_EMAIL)
        self.provider_token = self.cli("issue-token", PROVIDER_EMAIL, "--reusable")
        repos = {name: echo_service_repo(self.tmp, name, version)
                 for name, version in TEST_SERVICES.items()}
        for descriptor in sorted((REPO_ROOT / "services").glob("*/service.json")):
            repos[descriptor.parent.name] = service_repo(descriptor, self.tmp / "service-repos")
        for name, repo in repos.items():
            self.githashes[name] = self.cli("register-service", PROVIDER, str(repo))
        self.processes.append(ServerProcess(
            [PYTHON, "-m", "dss_server", "run", "--host", "127.0.0.1"], self.server_env,
            f"{self.url}/healthz", self.tmp / "web-server.log", cwd=self.tmp))

    def user(self) -> DSSClient:
        """Our own client (the user side), logged in as an ordinary user."""
        if self._user_session is None:
            client = DSSClient(self.url)
            client.login(self.cli("issue-token", USER_EMAIL))
            self._user_session = client.session_id
        return DSSClient(self.url, session_id=self._user_session)

    def start_inference(self) -> None:
        if self.inference_url is None:
            port = free_port()
            self.processes.append(ServerProcess(
                [PYTHON, "-m", "dss_inference"],
                {"INFERENCE_PORT": str(port), "INFERENCE_OUTPUT_DIR": str(self.tmp / "inference")},
                f"http://127.0.0.1:{port}/readyz", self.tmp / "inference.log", cwd=self.tmp,
                timeout=120))
            self.inference_url = f"http://127.0.0.1:{port}"

    def dispatcher(self, name: str) -> ServerProcess:
        self.start_inference()
        metrics_port = free_port()
        process = ServerProcess(
            [PYTHON, "-m", "dss_dispatcher"],
            {"SERVER_URL": self.url, "DSS_PROVIDER_TOKEN": self.provider_token,
             "DSS_PROVIDER_NAME": PROVIDER, "DSS_PROVIDER_CODE": name,
             "LUNG_SEGMENTATION_SERVICE_URL": self.inference_url,
             "NODULE_DETECTION_SERVICE_URL": self.inference_url,
             "DSS_METRICS_PORT": str(metrics_port), "DSS_WORK_DIR": str(self.tmp / f"work-{name}"),
             "DSS_WORKERS": "2", "DSS_CLAIM_WAIT": "2", "DSS_POLL_INTERVAL": "0.5"},
            f"http://127.0.0.1:{metrics_port}/healthz", self.tmp / f"dispatcher-{name}.log")
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}
