"""Fixtures of the web page tests: a migrated database, apps, signed-in clients, form tokens."""
from __future__ import annotations

import pytest

from dss_server import create_app
from dss_server import db as database
from webui_support import Site, settings_for


@pytest.fixture(scope="module")
def webui_db(make_database):
    url = make_database("dss_webui")
    engine = database.make_engine(url)
    database.migrate(engine)
    engine.dispose()
    return url


@pytest.fixture
def make_site(webui_db, tmp_path):
    """Factory of apps with settings overridden (OIDC, NOAUTH); engines closed afterwards."""
    made = []

    def make(**overrides) -> Site:
        made.append(Site(create_app(settings_for(webui_db, tmp_path, overrides))))
        return made[-1]
    yield make
    for one in made:
        one.app.extensions["dss_engine"].dispose()


@pytest.fixture(scope="module")
def site(webui_db, tmp_path_factory):
    """One app per test module (tests make their own users, services and tickets)."""
    made = Site(create_app(settings_for(webui_db, tmp_path_factory.mktemp("site"), {})))
    yield made
    made.app.extensions["dss_engine"].dispose()
