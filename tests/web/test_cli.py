"""`python -m dss_server ...`: the admin chores `make up` (dss_dispatcher.devstack) relies on."""
import os
import re
import subprocess

import pytest
import requests

from helpers import PYTHON, ServerProcess, free_port
from test_admin import git_service_repo


def dss_server(args, env, cwd):
    result = subprocess.run([PYTHON, "-m", "dss_server", *args], cwd=cwd, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.slow  # seven interpreter starts and a server: 5-15 s on a loaded machine
def test_bootstrap_a_provider_with_the_cli(make_database, tmp_path):
    env = {"DATABASE_URL": make_database("dss_cli"), "DSS_SECRET_KEY": "k" * 32,
           "DSS_DATASTORE": str(tmp_path / "datastore")}
    assert "newest migration" in dss_server(["migrate"], env, tmp_path)
    admin_token = dss_server(["create-admin", "boss@example.org"], env, tmp_path)
    assert re.fullmatch(r"[0-9a-f]{48}", admin_token)
    assert dss_server(["add-provider", "local"], env, tmp_path) == "success"
    assert dss_server(["grant", "local", "robot@example.org"], env, tmp_path) == (
        "Added user robot@example.org to provider local")
    repo, commit = git_service_repo(tmp_path, name="CliSvc")
    assert dss_server(["register-service", "local", str(repo)], env, tmp_path) == commit
    robot_token = dss_server(["issue-token", "robot@example.org", "--reusable"], env, tmp_path)
    port = free_port()
    with ServerProcess([PYTHON, "-m", "dss_server", "run", "--host", "127.0.0.1"],
                       {**env, "PORT": str(port)}, f"http://127.0.0.1:{port}/readyz",
                       tmp_path / "server.log", cwd=tmp_path):
        url = f"http://127.0.0.1:{port}"
        for _ in range(2):
            robot = requests.Session()
            assert robot.post(f"{url}/api/login", data={"token": robot_token}).status_code == 200
        assert robot.get(f"{url}/api/pro/services").text == f"CliSvc,1.0.0,{commit},local\r\n"
        boss = requests.Session()
        assert boss.post(f"{url}/api/login", data={"token": admin_token}).status_code == 200
        assert boss.get(f"{url}/api/admin/providers").text == "local\r\n"


def test_cli_errors_are_one_clear_line(make_database, tmp_path):
    env = {**os.environ, "DATABASE_URL": make_database("dss_cli"), "DSS_SECRET_KEY": "k" * 32}
    subprocess.run([PYTHON, "-m", "dss_server", "migrate"], env=env, check=True, cwd=tmp_path,
                   capture_output=True)
    result = subprocess.run([PYTHON, "-m", "dss_server", "grant", "ghost", "x@example.org"],
                            env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: Provider ghost does not exist"
    subprocess.run([PYTHON, "-m", "dss_server", "create-admin", "boss@example.org"], env=env,
                   check=True, cwd=tmp_path, capture_output=True)
    result = subprocess.run([PYTHON, "-m", "dss_server", "issue-token", "boss@example.org",
                             "--reusable"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: Provider tokens are for service accounts, and boss@example.org is an "
        "administrator: use a dedicated account for the provider's daemon")
    subprocess.run([PYTHON, "-m", "dss_server", "issue-token", "robot@example.org", "--reusable"],
                   env=env, check=True, cwd=tmp_path, capture_output=True)
    result = subprocess.run([PYTHON, "-m", "dss_server", "create-admin", "robot@example.org"],
                            env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: robot@example.org holds provider tokens, so it is a provider daemon's account: "
        "an administrator needs an account of their own")
