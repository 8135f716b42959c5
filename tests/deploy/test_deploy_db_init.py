"""db/initdb/10-dss-database.sh against the real PostgreSQL server of the tests: it creates the
database and its owner, and the web server's migrations then build the schema as that owner."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from contextlib import closing

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from helpers import REPO_ROOT

INIT_SCRIPT = REPO_ROOT / "db" / "initdb" / "10-dss-database.sh"


@pytest.fixture
def seed_names(pg_server_url):
    """Unique database/role names (the server is shared), dropped afterwards."""
    suffix = uuid.uuid4().hex[:10]
    names = {"ITK_SNAP_SERVER_DATABASE_NAME": f"dss_deploy_{suffix}",
             "ITK_SNAP_SERVER_DATABASE_USERNAME": f"dss_deploy_owner_{suffix}",
             "ITK_SNAP_SERVER_DATABASE_PASSWORD": "it's \"quoted\"; DROP ROLE postgres;"}
    yield names
    with closing(_admin_connection(pg_server_url)) as conn, conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{names["ITK_SNAP_SERVER_DATABASE_NAME"]}" WITH (FORCE)')
        cur.execute(f'DROP ROLE IF EXISTS "{names["ITK_SNAP_SERVER_DATABASE_USERNAME"]}"')


def _admin_connection(server_url: str, database: str = "postgres"):
    url = make_url(server_url)
    conn = psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username or "postgres",
                            password=url.password, dbname=database)
    conn.autocommit = True
    return conn


def _run_init_script(server_url: str, names: dict[str, str]) -> subprocess.CompletedProcess:
    if not shutil.which("psql"):
        pytest.skip("psql is not installed (apt-get install postgresql-client)")
    url = make_url(server_url)
    env = {**os.environ, "PGHOST": url.host, "PGPORT": str(url.port or 5432),
           "POSTGRES_USER": url.username or "postgres", "POSTGRES_DB": url.database or "postgres", **names}
    if url.password:
        env["PGPASSWORD"] = url.password
    return subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def test_init_script_creates_the_database_owned_by_its_user(pg_server_url, seed_names):
    result = _run_init_script(pg_server_url, seed_names)
    assert result.returncode == 0, result.stderr
    with closing(_admin_connection(pg_server_url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                    (seed_names["ITK_SNAP_SERVER_DATABASE_NAME"],))
        assert cur.fetchone() == (seed_names["ITK_SNAP_SERVER_DATABASE_USERNAME"],)
        cur.execute("SELECT rolcanlogin, rolsuper, rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s",
                    (seed_names["ITK_SNAP_SERVER_DATABASE_USERNAME"],))
        assert cur.fetchone() == (True, False, True)
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'postgres'")
        assert cur.fetchone() == (1,), "the quoted password was data, not SQL"


def test_init_script_refuses_to_run_without_a_password(pg_server_url, seed_names):
    names = {**seed_names, "ITK_SNAP_SERVER_DATABASE_PASSWORD": ""}
    result = _run_init_script(pg_server_url, names)
    assert result.returncode != 0 and "ITK_SNAP_SERVER_DATABASE_PASSWORD" in result.stderr
    with closing(_admin_connection(pg_server_url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (names["ITK_SNAP_SERVER_DATABASE_NAME"],))
        assert cur.fetchone() is None


def test_web_server_migrations_build_the_schema_as_the_database_owner(pg_server_url, seed_names, tmp_path):
    assert _run_init_script(pg_server_url, seed_names).returncode == 0
    url = make_url(pg_server_url)
    env = {**os.environ, **seed_names, "POSTGRES_PORT_5432_TCP_ADDR": url.host,
           "POSTGRES_PORT_5432_TCP_PORT": str(url.port or 5432), "DSS_SECRET_KEY": "x" * 64,
           "DSS_DATASTORE": str(tmp_path / "datastore")}
    env.pop("DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-m", "dss_server", "migrate"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    database = seed_names["ITK_SNAP_SERVER_DATABASE_NAME"]
    with closing(_admin_connection(pg_server_url, database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
        assert cur.fetchall() == [(seed_names["ITK_SNAP_SERVER_DATABASE_USERNAME"],)]
        cur.execute("SELECT count(*) FROM alembic_version")
        assert cur.fetchone() == (1,)
