"""`make up` (dss_dispatcher.devstack) in a scratch folder on free ports: it bootstraps, starts
the three processes, prints what the user needs, stops them on Ctrl-C, SIGHUP or SIGTERM, a
second run reuses everything, and DATABASE_URL names a fresh database it migrates."""
from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest
import requests

from dss_client import DSSClient
from helpers import PYTHON, REPO_ROOT, default_sigint, free_port

pytestmark = pytest.mark.slow


def _run_until_up(cwd, env) -> tuple[str, subprocess.Popen]:
    process = subprocess.Popen([PYTHON, "-m", "dss_dispatcher.devstack"], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=default_sigint)
    lines, deadline = [], time.monotonic() + 180
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Ctrl-C stops everything") or time.monotonic() > deadline:
            break
    return "".join(lines), process


def _stop(process, signum=signal.SIGINT) -> str:
    """Stop `make up` with `signum`; whatever happens, SIGTERM after a minute, which the stack
    also stops its children on (they run in sessions of their own)."""
    process.send_signal(signum)
    try:
        rest = process.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        process.terminate()
        process.communicate(timeout=60)
        raise
    assert process.returncode == 0, rest
    return rest


def _refused(url: str) -> bool:
    try:
        requests.get(url, timeout=5)
    except requests.ConnectionError:
        return True
    return False


def test_make_up_bootstraps_and_is_idempotent(tmp_path):
    pytest.importorskip("dss_server.cli", reason="the web server package is not installed")
    import os
    ports = {"PORT": free_port(), "INFERENCE_PORT": free_port(), "DSS_METRICS_PORT": free_port()}
    env = {**{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DSS_DATASTORE")},
           **{k: str(v) for k, v in ports.items()}}
    first, process = _run_until_up(tmp_path, env)
    try:
        assert "The DSS stack is up." in first, first
        token = re.search(r"Admin login token .*: ([0-9a-f]{48})", first).group(1)
        assert f"dss login http://127.0.0.1:{ports['PORT']} --token {token}" in first
        assert "dss demo" in first
        client = DSSClient(f"http://127.0.0.1:{ports['PORT']}")
        assert client.login(token) == "admin@localhost"
        names = sorted(s.name for s in client.services())
        assert names == ["LungNoduleDetection", "LungSegmentation"]
        web_token = client.issue_token("admin@localhost", reusable=False)  # as the banner says
        assert "dss admin issue-token admin@localhost --single-use" in first
        assert DSSClient(f"http://127.0.0.1:{ports['PORT']}").login(web_token) == "admin@localhost"
        again = subprocess.run([PYTHON, "-m", "dss_dispatcher.devstack"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 1
        assert f"port {ports['PORT']} (PORT) is in use: is the stack already running?" in \
            again.stderr
        assert "Admin login token" not in again.stdout, "no token for a stack that never ran"
    finally:
        _stop(process)
    githashes = re.search(r"services +(.*)", first).group(1)

    second, process = _run_until_up(tmp_path, env)
    try:
        assert "The DSS stack is up." in second, second
        assert re.search(r"services +(.*)", second).group(1) == githashes   # same githashes
        for page in ("README.md", "docs/dispatcher.md"):  # the banner the docs show is this one
            assert f"services          {githashes}" in (REPO_ROOT / page).read_text(), page
        token = re.search(r"Admin login token .*: ([0-9a-f]{48})", second).group(1)
        client = DSSClient(f"http://127.0.0.1:{ports['PORT']}")
        client.login(token)
        assert len(client.services()) == 2
    finally:
        _stop(process, signal.SIGHUP)  # the terminal closed
    assert _refused(f"http://127.0.0.1:{ports['PORT']}/healthz")
    assert (tmp_path / "var" / "dispatcher" / "provider_token").stat().st_mode & 0o077 == 0


def test_make_up_migrates_the_database_of_database_url_and_stops_on_sigterm(make_database,
                                                                           tmp_path):
    pytest.importorskip("dss_server.cli", reason="the web server package is not installed")
    import os
    ports = {"PORT": free_port(), "INFERENCE_PORT": free_port(), "DSS_METRICS_PORT": free_port()}
    url = make_database("dss_devstack").replace("postgresql+psycopg2://", "postgres://")
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "DATABASE_URL": url,
           "DSS_SECRET_KEY": "k" * 32, "DSS_DATASTORE": str(tmp_path / "datastore")}
    output, process = _run_until_up(tmp_path, env)
    try:
        assert "The DSS stack is up." in output, output
        shown = url.replace("postgres://", "postgresql+psycopg2://")
        assert f"bootstrapping: database {shown} is at the newest migration" in output
        assert "embedded" not in output
        token = re.search(r"Admin login token .*: ([0-9a-f]{48})", output).group(1)
        client = DSSClient(f"http://127.0.0.1:{ports['PORT']}")
        client.login(token)
        assert len(client.services()) == 2
    finally:
        _stop(process, signal.SIGTERM)
    for port in (ports["PORT"], ports["INFERENCE_PORT"], ports["DSS_METRICS_PORT"]):
        assert _refused(f"http://127.0.0.1:{port}/healthz")
