"""Fixtures for the web server tests: a migrated PostgreSQL database, an app, logged-in clients."""
from __future__ import annotations

import pytest

from dss_server import create_app
from dss_server import db as database
from web_support import Harness, make_config


@pytest.fixture(scope="session")
def migrated_db(make_database):
    """A fresh PostgreSQL database at the newest migration, shared by the web tests (each test
    makes its own users and services, so tests do not see each other's queues)."""
    url = make_database("dss_web")
    engine = database.make_engine(url)
    database.migrate(engine)
    engine.dispose()
    return url


@pytest.fixture
def harness(migrated_db, tmp_path):
    return Harness(create_app(make_config(migrated_db, tmp_path)))


@pytest.fixture
def make_harness(migrated_db, tmp_path):
    def make(**overrides):
        return Harness(create_app(make_config(migrated_db, tmp_path, **overrides)))
    return make
