"""The compose stack without containers: each service's command from its Dockerfile, run from its
Docker build context with the environment compose gives it (image ENV, then compose's values
with .env.example substituted), on the real PostgreSQL prepared by db/initdb. Only what a
container changes is mapped: host names to 127.0.0.1, fixed ports to free ones, volume paths to
temporary folders. Shows that the settings the deployment writes work in the real programs."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
import requests
from sqlalchemy.engine import make_url

from deploy_files import docker_context_copy, env_example_filled, image_command, service_environment
from helpers import REPO_ROOT, ServerProcess, free_port

pytestmark = pytest.mark.slow
VENV_BIN = str(Path(sys.executable).parent)


def local_environment(name: str, dotenv: dict[str, str], mapping: dict[str, str]) -> dict[str, str]:
    """compose's environment for the service, run with this virtualenv's python and gunicorn."""
    return {**service_environment(name, dotenv, mapping),
            "PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "HOME": mapping["/app"]}


@pytest.fixture(scope="module")
def stack(pg_server_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stack")
    url = make_url(pg_server_url)
    suffix = uuid.uuid4().hex[:10]
    dotenv = {**env_example_filled(), "ITK_SNAP_SERVER_DATABASE_NAME": f"dss_stack_{suffix}",
              "ITK_SNAP_SERVER_DATABASE_USERNAME": f"dss_stack_owner_{suffix}"}
    web_port, inference_port, metrics_port = free_port(), free_port(), free_port()
    mapping = {"http://web-server:8080": f"http://127.0.0.1:{web_port}",
               "http://inference-server:8080": f"http://127.0.0.1:{inference_port}",
               "/app/datastore": str(tmp / "datastore"), "/datastore": str(tmp / "datastore"),
               "/wmlce/data/output": str(tmp / "inference-output"), "/app/var": str(tmp / "var"),
               "/tmp/dss-metrics": str(tmp / "web-metrics"), "/app": str(tmp)}
    servers = []
    try:
        init = subprocess.run(["bash", str(REPO_ROOT / "db" / "initdb" / "10-dss-database.sh")],
                              env={**os.environ, **dotenv, "PGHOST": url.host, "PGPORT": str(url.port or 5432),
                                   "POSTGRES_USER": url.username or "postgres", "POSTGRES_DB": "postgres"},
                              capture_output=True, text=True, timeout=60)
        if init.returncode == 127 or "psql: command not found" in init.stderr:
            pytest.skip("psql is not installed (apt-get install postgresql-client)")
        assert init.returncode == 0, init.stderr

        web_env = local_environment("web-server", dotenv, mapping)
        web_env.update(POSTGRES_PORT_5432_TCP_ADDR=url.host, POSTGRES_PORT_5432_TCP_PORT=str(url.port or 5432),
                       PORT=str(web_port))
        web_context = docker_context_copy("web-server", tmp / "web-server")
        servers.append(ServerProcess(image_command("web-server"), web_env, f"http://127.0.0.1:{web_port}/readyz",
                                     tmp / "web.log", cwd=web_context, timeout=120))

        inference_env = local_environment("inference-server", dotenv, mapping)
        inference_env.update(INFERENCE_PORT=str(inference_port), INFERENCE_DEVICE="cpu")
        servers.append(ServerProcess(image_command("inference-server"), inference_env,
                                     f"http://127.0.0.1:{inference_port}/readyz", tmp / "inference.log",
                                     cwd=docker_context_copy("inference-server", tmp / "inference-server"),
                                     timeout=180))

        def server_cli(*args: str) -> str:
            return subprocess.run([sys.executable, "-m", "dss_server", *args], env=web_env, cwd=web_context,
                                  capture_output=True, text=True, check=True, timeout=120).stdout.strip()
        server_cli("add-provider", dotenv["DSS_PROVIDER_NAME"])
        server_cli("grant", dotenv["DSS_PROVIDER_NAME"], "dispatcher@example.org")
        token = server_cli("issue-token", "dispatcher@example.org", "--reusable").splitlines()[-1]

        dispatcher_env = local_environment("dispatcher", {**dotenv, "DSS_PROVIDER_TOKEN": token}, mapping)
        # Short long-polls only so that the test stops quickly; the rest is compose's.
        dispatcher_env.update(DSS_METRICS_PORT=str(metrics_port), DSS_CLAIM_WAIT="2", DSS_POLL_INTERVAL="0.5")
        servers.append(ServerProcess(image_command("dispatcher"), dispatcher_env,
                                     f"http://127.0.0.1:{metrics_port}/healthz", tmp / "dispatcher.log",
                                     cwd=docker_context_copy("dispatcher", tmp / "dispatcher"), timeout=120))
        yield {"web": f"http://127.0.0.1:{web_port}", "inference": f"http://127.0.0.1:{inference_port}",
               "dispatcher": f"http://127.0.0.1:{metrics_port}", "tmp": tmp, "cli": server_cli,
               "provider": dotenv["DSS_PROVIDER_NAME"]}
    finally:
        for server in reversed(servers):
            server.stop()
        with closing(psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username or "postgres",
                                      password=url.password, dbname="postgres")) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{dotenv["ITK_SNAP_SERVER_DATABASE_NAME"]}" WITH (FORCE)')
                cur.execute(f'DROP ROLE IF EXISTS "{dotenv["ITK_SNAP_SERVER_DATABASE_USERNAME"]}"')


def test_web_server_serves_on_the_migrated_database_with_several_workers(stack):
    assert requests.get(stack["web"] + "/healthz", timeout=10).status_code == 200
    for _ in range(4):  # whichever gunicorn worker answers, the merged metrics are there
        metrics = requests.get(stack["web"] + "/metrics", timeout=10)
        assert metrics.status_code == 200 and "dss_http_request_duration_seconds" in metrics.text
    assert list((stack["tmp"] / "web-metrics").glob("*.db")), "multiprocess metrics files"


def test_dispatcher_logs_in_with_the_provider_token_and_reports_health(stack):
    health = requests.get(stack["dispatcher"] + "/healthz", timeout=10)
    assert health.status_code == 200
    assert "dss_dispatcher_" in requests.get(stack["dispatcher"] + "/metrics", timeout=10).text


def test_inference_server_writes_only_under_its_output_volume(stack):
    assert requests.get(stack["inference"] + "/healthz", timeout=10).status_code == 200
    assert "dss_inference_" in requests.get(stack["inference"] + "/metrics", timeout=10).text
    assert (stack["tmp"] / "inference-output").is_dir()


def test_a_ticket_runs_through_the_stack_as_the_deployment_docs_bootstrap_it(stack, tmp_path):
    """Services registered from git repositories holding service.json (docs/deployment.md),
    then a chest CT segmented by the dispatcher that reads the shared datastore."""
    from dss_client import DSSClient
    from dss_client.phantom import make_phantom, write_phantom

    repo = tmp_path / "lung-segmentation"
    repo.mkdir()
    (repo / "service.json").write_bytes((REPO_ROOT / "services" / "lung-segmentation" / "service.json").read_bytes())
    git = ["git", "-C", str(repo), "-c", "user.name=DSS", "-c", "user.email=dss@localhost"]
    for args in (["init", "-q"], ["add", "service.json"], ["commit", "-q", "-m", "lung-segmentation service"]):
        subprocess.run(git + args, check=True, capture_output=True, timeout=60)
    assert re.fullmatch(r"[0-9a-f]{40}", stack["cli"]("register-service", stack["provider"], str(repo)))

    ct = tmp_path / "chest_ct.nii.gz"
    write_phantom(ct, make_phantom())
    user = DSSClient(stack["web"])
    user.login(stack["cli"]("create-admin", "radiologist@example.org").splitlines()[-1])
    ticket = user.submit_workspace(ct, "LungSegmentation")
    deadline = time.monotonic() + 240
    while user.status(ticket) not in ("success", "failed", "timeout") and time.monotonic() < deadline:
        time.sleep(0.5)
    log = " | ".join(entry.message for entry in user.log(ticket))
    assert user.status(ticket) == "success", log
    names = [path.name for path in user.download(ticket, "results", tmp_path / "results")]
    assert any(name.endswith(".itksnap") for name in names) and len(names) >= 2
