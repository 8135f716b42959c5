"""Fixtures for every test folder: a fresh PostgreSQL database per run.

The database comes from DSS_TEST_DATABASE_URL when set (a server URL; a fresh database is
created on it), else the PostgreSQL server on 127.0.0.1:5432 (trust auth, user postgres),
else a throwaway cluster started with initdb/pg_ctl when they are installed.
"""
from __future__ import annotations

import os
import uuid

import psycopg2
import pytest
from psycopg2 import sql
from sqlalchemy.engine import make_url

from helpers import PgCluster


def _answers(server_url: str) -> bool:
    try:
        psycopg2.connect(_dsn(server_url, "postgres"), connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


def _dsn(server_url: str, database: str) -> str:
    return make_url(server_url).set(drivername="postgresql", database=database) \
        .render_as_string(hide_password=False)


def _throwaway_cluster() -> PgCluster:
    try:
        return PgCluster()
    except FileNotFoundError:
        pytest.exit("No PostgreSQL answers on 127.0.0.1:5432, DSS_TEST_DATABASE_URL is not set, "
                    "and initdb/pg_ctl are not installed: install PostgreSQL "
                    "(apt-get install postgresql) or point DSS_TEST_DATABASE_URL at a server.", 2)


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory):
    """URL of a PostgreSQL server the tests may create databases on."""
    url = os.environ.get("DSS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    if _answers(url):
        yield url
        return
    cluster = _throwaway_cluster()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def make_database(pg_server_url):
    """Factory: a new, empty database on the test server; all are dropped at the end."""
    created: list[str] = []

    def make(prefix: str = "dss_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(_dsn(pg_server_url, "postgres"))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.close()
        created.append(name)
        return make_url(pg_server_url).set(drivername="postgresql+psycopg2", database=name) \
            .render_as_string(hide_password=False)

    yield make
    conn = psycopg2.connect(_dsn(pg_server_url, "postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in created:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    conn.close()


@pytest.fixture(scope="session")
def database_url(make_database):
    """One fresh PostgreSQL database for this test run."""
    return make_database()
