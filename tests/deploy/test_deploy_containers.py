"""Builds the images and runs the compose stack, where a container engine answers.

Skipped where none does (the development machines and CI run no container engine).
"""
from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
import requests

from deploy_files import COMPOSE_FILE
from helpers import REPO_ROOT, free_port, wait_for_http

pytestmark = [pytest.mark.container, pytest.mark.slow]


def _engine_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory):
    if not _engine_answers():
        pytest.skip("no container engine here: docker is not installed or `docker info` finds no daemon")
    project, port = f"dss-test-{uuid.uuid4().hex[:8]}", free_port()
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    env_file.write_text("\n".join([
        "POSTGRES_PASSWORD=" + uuid.uuid4().hex, "ITK_SNAP_SERVER_DATABASE_PASSWORD=" + uuid.uuid4().hex,
        "DSS_SECRET_KEY=" + uuid.uuid4().hex * 2, f"DSS_HTTP_PORT={port}", "DSS_PROVIDER_TOKEN=",
    ]) + "\n")
    compose = ["docker", "compose", "-p", project, "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
    try:
        subprocess.run(compose + ["up", "-d", "--build", "--wait", "db", "web-server"],
                       cwd=REPO_ROOT, check=True, timeout=1800)
        yield f"http://127.0.0.1:{port}", compose
    finally:
        subprocess.run(compose + ["down", "-v", "--remove-orphans"], cwd=REPO_ROOT, timeout=300)


def test_web_server_container_is_ready_on_the_migrated_database(compose_stack):
    base_url, _ = compose_stack
    wait_for_http(base_url + "/readyz", timeout=120)
    assert requests.get(base_url + "/healthz", timeout=10).status_code == 200


def test_web_server_runs_as_non_root(compose_stack):
    _, compose = compose_stack
    uid = subprocess.run(compose + ["exec", "-T", "web-server", "id", "-u"], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert uid != "0"


def test_all_images_build(compose_stack):
    _, compose = compose_stack
    subprocess.run(compose + ["build", "dispatcher", "inference-server"], cwd=REPO_ROOT, check=True, timeout=3600)
