"""The database goes away under a running server (a restart, a failover): clear answers."""
from __future__ import annotations

import psycopg2
from sqlalchemy.engine import make_url

from dss_server import create_app
from dss_server import db as database

from web_support import Harness, make_config


def cut_connections(database_url: str) -> int:
    """What a PostgreSQL restart does to the server's pooled connections."""
    url = make_url(database_url)
    admin = psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username,
                             dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = %s AND pid <> pg_backend_pid()", (url.database,))
        cut = cursor.fetchone()[0]
    admin.close()
    return cut


def test_a_request_on_a_cut_connection_is_a_503_and_the_next_one_works(make_database, tmp_path):
    url = make_database("dss_outage")
    engine = database.make_engine(url)
    database.migrate(engine)
    engine.dispose()
    harness = Harness(create_app(make_config(url, tmp_path)))
    user = harness.client()
    assert user.get("/api/tickets").status_code == 200  # the pool holds a live connection
    assert cut_connections(url) >= 1
    lost = user.get("/api/tickets", headers={"Accept": "application/json"})
    assert lost.status_code == 503
    assert lost.json["error"].startswith("The database connection was lost")
    assert lost.headers["Retry-After"] == "1"
    assert user.get("/api/tickets").status_code == 200


def test_a_claim_on_a_cut_connection_is_a_503_and_the_next_one_claims(make_database, tmp_path):
    """A claim reads the caller and claims on the autocommit pool, apart from the session's:
    after a restart it too answers 503 once, and both pools start afresh."""
    url = make_database("dss_outage_claim")
    engine = database.make_engine(url)
    database.migrate(engine)
    engine.dispose()
    harness = Harness(create_app(make_config(url, tmp_path)))
    githash = harness.service(provider="outage-lab")
    provider, user = harness.provider_client("outage-lab"), harness.client()
    form = {"services": githash, "provider": "outage-lab", "code": "01"}
    assert provider.post("/api/pro/services/claims", data=form).data == b"None"  # pools live
    ticket = harness.submit(user, githash)
    assert cut_connections(url) >= 1
    lost = provider.post("/api/pro/services/claims", data=form)
    assert (lost.status_code, lost.headers["Retry-After"]) == (503, "1")
    assert lost.data.startswith(b"The database connection was lost")
    claimed = provider.post("/api/pro/services/claims", data=form)
    assert (claimed.status_code, claimed.data) == (200, f"{ticket},{githash},claimed\r\n".encode())
