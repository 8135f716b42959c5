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


def _server_env(**settings):
    unset = ("DATABASE_URL", "POSTGRES_PORT_5432_TCP_ADDR", "DSS_SECRET_KEY", "DSS_DATASTORE",
             "ITK_SNAP_SERVER_NOAUTH")
    return {**{k: v for k, v in os.environ.items() if k not in unset}, **settings}


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_platform_urls_run_on_psycopg2_and_every_verb_migrates(scheme, make_database, tmp_path):
    """The bare forms platforms hand out (SQLAlchemy alone would want psycopg 3), on a fresh
    database nobody migrated: the verb migrates first."""
    url = make_database("dss_cli_url").replace("postgresql+psycopg2://", f"{scheme}://")
    result = subprocess.run([PYTHON, "-m", "dss_server", "create-admin", "boss@example.org"],
                            env=_server_env(DATABASE_URL=url, DSS_SECRET_KEY="k" * 32),
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"[0-9a-f]{48}", result.stdout.strip())


def test_every_verb_migrates_a_fresh_sqlite_file(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}", "DSS_SECRET_KEY": "k" * 32}
    assert dss_server(["add-provider", "local"], env, tmp_path) == "success"
    assert dss_server(["migrate"], env, tmp_path) == (
        f"database sqlite:///{tmp_path / 'fresh.sqlite3'} is at the newest migration")


@pytest.mark.parametrize("url", ["postgresql+asyncpg://dss:secret@db/dss",
                                 "mysql://dss:secret@db/dss", "not a url"])
def test_a_url_for_another_driver_is_one_line(url, tmp_path):
    result = subprocess.run([PYTHON, "-m", "dss_server", "migrate"], cwd=tmp_path, text=True,
                            env=_server_env(DATABASE_URL=url, DSS_SECRET_KEY="k" * 32),
                            capture_output=True, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "secret" not in result.stderr
    assert result.stderr.startswith("error: DATABASE_URL")
    assert "postgresql://USER:PASSWORD@HOST:PORT/NAME" in result.stderr


def _serve(args, env, tmp_path):
    port = free_port()
    return ServerProcess([PYTHON, "-m", "dss_server", *args, "--host", "127.0.0.1"],
                         {**env, "PORT": str(port)}, f"http://127.0.0.1:{port}/readyz",
                         tmp_path / f"server-{port}.log", cwd=tmp_path, timeout=120)


def test_run_is_gunicorn_after_migrations_and_dev_is_flask(make_database, tmp_path):
    """`make web` (run): what production runs, on a fresh database; --dev: Flask's server."""
    env = {"DATABASE_URL": make_database("dss_cli_run"), "DSS_SECRET_KEY": "k" * 32,
           "DSS_DATASTORE": str(tmp_path / "datastore")}
    with _serve(["run"], env, tmp_path) as server:  # /readyz: reachable and at the newest migration
        assert requests.get(server.health_url).headers["Server"].startswith("gunicorn")
    with _serve(["run", "--dev"], env, tmp_path) as server:
        assert requests.get(server.health_url).headers["Server"].startswith("Werkzeug")


def test_run_in_embedded_mode_is_gunicorn_with_the_banner(tmp_path):
    with _serve(["run"], _server_env(PYTHONUNBUFFERED="1"), tmp_path) as server:
        assert requests.get(server.health_url).headers["Server"].startswith("gunicorn")
        token = re.search(r"login token: ([0-9a-f]{48})", server.log_tail()).group(1)
        login = requests.post(server.health_url.replace("/readyz", "/api/login"),
                              data={"token": token})
        assert login.text == "logged in as admin@localhost \n"
