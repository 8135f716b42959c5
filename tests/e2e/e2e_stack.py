"""The whole stack as real processes on loopback: PostgreSQL, web server, inference server,
and dispatchers started on demand (so a test can kill one, or point one at a dead server).
Used by the e2e tests and by bench/e2e.py."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dss_client import DSSClient
from dss_client.sdk.register import service_repo
from dss_dispatcher.devstack import builtin_descriptors
from helpers import PYTHON, ServerProcess, free_port

CLAIM_LEASE = "4"
PROVIDER, PROVIDER_EMAIL, USER_EMAIL = "e2e-lab", "robot@e2e.test", "user@e2e.test"


class Stack:
    def __init__(self, tmp: Path, database_url: str):
        self.tmp = tmp
        self.server_env = {"DATABASE_URL": database_url, "DSS_DATASTORE": str(tmp / "datastore"),
                           "DSS_SECRET_KEY": "e2e-" + "x" * 40, "DSS_CLAIM_LEASE": CLAIM_LEASE,
                           "DSS_MAX_ATTEMPTS": "3", "PORT": str(free_port())}
        self.server_url = f"http://127.0.0.1:{self.server_env['PORT']}"
        self.inference_port = free_port()
        self.inference_url = f"http://127.0.0.1:{self.inference_port}"
        self.processes: list[ServerProcess] = []

    def cli(self, *args: str) -> str:
        result = subprocess.run([PYTHON, "-m", "dss_server", *args], cwd=self.tmp, text=True,
                                capture_output=True, env={**_base_env(), **self.server_env},
                                timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        self.cli("migrate")
        self.cli("add-provider", PROVIDER)
        self.cli("grant", PROVIDER, PROVIDER_EMAIL)
        self.provider_token = self.cli("issue-token", PROVIDER_EMAIL, "--reusable")
        self.githashes = {}
        for descriptor in builtin_descriptors():
            repo = service_repo(descriptor, self.tmp / "service-repos")
            self.githashes[descriptor.parent.name] = self.cli("register-service", PROVIDER, str(repo))
        self.processes.append(ServerProcess(
            [PYTHON, "-m", "dss_server", "run", "--host", "127.0.0.1"], self.server_env,
            f"{self.server_url}/healthz", self.tmp / "web-server.log", cwd=self.tmp))
        self.processes.append(ServerProcess(
            [PYTHON, "-m", "dss_inference"],
            {"INFERENCE_PORT": str(self.inference_port), "INFERENCE_OUTPUT_DIR": str(self.tmp / "inference")},
            f"{self.inference_url}/readyz", self.tmp / "inference.log", cwd=self.tmp, timeout=120))

    def user(self) -> DSSClient:
        """A client logged in as the test user (one login, its session shared)."""
        if getattr(self, "user_session", None) is None:
            client = DSSClient(self.server_url)
            client.login(self.cli("create-admin", USER_EMAIL))
            self.user_session = client.session_id
        return DSSClient(self.server_url, session_id=self.user_session)

    def dispatcher(self, name: str, inference_url: str | None = None, **env: str) -> ServerProcess:
        metrics_port = free_port()
        inference_url = inference_url or self.inference_url
        process = ServerProcess(
            [PYTHON, "-m", "dss_dispatcher"],
            {"SERVER_URL": self.server_url, "DSS_PROVIDER_TOKEN": self.provider_token,
             "DSS_PROVIDER_NAME": PROVIDER, "DSS_PROVIDER_CODE": name,
             "LUNG_SEGMENTATION_SERVICE_URL": inference_url,
             "NODULE_DETECTION_SERVICE_URL": inference_url,
             "DSS_METRICS_PORT": str(metrics_port), "DSS_WORK_DIR": str(self.tmp / f"work-{name}"),
             "DSS_CLAIM_WAIT": "2", "DSS_POLL_INTERVAL": "0.5", "DSS_RETRY_BUDGET": "5", **env},
            f"http://127.0.0.1:{metrics_port}/healthz", self.tmp / f"dispatcher-{name}.log")
        process.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def _base_env() -> dict[str, str]:
    return dict(os.environ)


def require_components() -> None:
    pytest.importorskip("dss_server.cli", reason="the web server package is not installed")
    models = pytest.importorskip("dss_inference.models",
                                 reason="the inference package is not installed")
    if not hasattr(models, "load_models"):
        pytest.skip("the inference server has no models yet (dss_inference.models.load_models)")
