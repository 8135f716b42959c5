"""The database goes away under a running server (a restart, a failover): clear answers."""
from __future__ import annotations

import threading
import time

import psycopg2
import pytest
import requests
from sqlalchemy.engine import make_url

from dss_server import create_app
from dss_server import db as database
from dss_server.config import database_url_for_driver
from dss_server.models import ProviderAccess
from dss_server.services import auth
from helpers import PYTHON, PgCluster, ServerProcess, free_port, insert_service
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


def test_a_commit_that_loses_its_connection_is_a_503(make_database, tmp_path):
    """The request's transaction commits in an after_request hook, where Flask would answer its
    own 500: a restart that cuts the connection at COMMIT answers 503 like any other loss."""
    url = make_database("dss_outage_commit")
    engine = database.make_engine(url)
    database.migrate(engine)
    with engine.begin() as connection:  # a deferred trigger runs at COMMIT: the backend ends there
        connection.exec_driver_sql(
            "CREATE FUNCTION cut() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END$$; "
            "CREATE CONSTRAINT TRIGGER cut_at_commit AFTER INSERT ON tickets "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cut()")
    engine.dispose()
    harness = Harness(create_app(make_config(url, tmp_path)))
    user, githash = harness.client(), harness.service()
    lost = user.post("/api/tickets", data={"githash": githash},
                     headers={"Accept": "application/json"})
    assert (lost.status_code, lost.headers["Retry-After"]) == (503, "1")
    assert lost.json["error"].startswith("The database connection was lost")
    assert user.get("/api/tickets").data == b""  # rolled back, and the next request works


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_an_unmigrated_database_is_a_503_that_says_so(kind, make_database, tmp_path, caplog):
    url = make_database("dss_unmigrated") if kind == "postgresql" else \
        f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    app = create_app(make_config(url, tmp_path, embedded=False))
    answer = app.test_client().post("/api/login", data={"token": "0" * 48})
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "1")
    assert answer.data == b"The database is not migrated: run python -m dss_server migrate"
    assert "the database is not migrated: run python -m dss_server migrate" in caplog.text


@pytest.mark.slow  # a PostgreSQL cluster of its own restarted three times under load: 15-40 s
def test_restarts_under_load_answer_only_200_or_503(tmp_path):
    """8 clients (reads, ticket creation that commits in after_request, claims on the
    autocommit pool) against gunicorn while its PostgreSQL restarts: never a 500."""
    cluster = PgCluster()
    try:
        _hammer_through_restarts(cluster, tmp_path)
    finally:
        cluster.stop()


def _hammer_through_restarts(cluster: PgCluster, tmp_path) -> None:
    url = cluster.url.replace("postgresql://", "postgres://")  # as platforms hand it out
    port = free_port()
    env = {"DATABASE_URL": url, "PORT": str(port), "DSS_SECRET_KEY": "s" * 32,
           "DSS_DATASTORE": str(tmp_path / "datastore"), "WEB_CONCURRENCY": "2"}
    with ServerProcess([PYTHON, "-m", "dss_server", "run", "--host", "127.0.0.1"], env,
                       f"http://127.0.0.1:{port}/readyz", tmp_path / "server.log",
                       cwd=tmp_path, timeout=120) as server:
        base = f"http://127.0.0.1:{port}"
        tokens, githash = _seed(database_url_for_driver(url), CLIENTS)
        statuses: list[int] = []
        stop = threading.Event()
        threads = [threading.Thread(target=_client, args=(base, token, githash, statuses, stop))
                   for token in tokens]
        for thread in threads:
            thread.start()
        try:
            for mode in ("fast", "immediate", "fast"):
                _wait_for_answers(statuses, 40)
                cluster.restart(mode)
            _wait_for_answers(statuses, 40)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        log = server.log_tail(20000)
    assert set(statuses) <= {200, 503}, (sorted(set(statuses)), log)
    assert 503 in statuses  # the restarts were met, and answered as such


CLIENTS = 8


def _seed(url: str, count: int) -> tuple[list[str], str]:
    """Users with provider rights on one service: each can list, create and claim."""
    sessions = database.make_session_factory(database.make_engine(url))
    with sessions() as db:
        githash = insert_service(db, {"name": "Outage", "version": "1"}, provider="outage")
        tokens = []
        for index in range(count):
            user = auth.ensure_user(db, f"client{index}@example.org", tier="poweruser")
            db.add(ProviderAccess(user_id=user.id, provider="outage"))
            tokens.append(auth.issue_token(db, user, reusable=True))
        db.commit()
    return tokens, githash


def _client(base, token, githash, statuses, stop) -> None:
    session = requests.Session()
    claim = {"services": githash, "provider": "outage", "code": "01"}
    while not stop.is_set():
        for method, path, data in (("POST", "/api/login", {"token": token}),
                                   ("POST", "/api/tickets", {"githash": githash}),
                                   ("GET", "/api/tickets", None),
                                   ("POST", "/api/pro/services/claims", claim)):
            try:
                statuses.append(session.request(method, base + path, data=data,
                                                timeout=30).status_code)
            except requests.ConnectionError:  # the server itself must never go away
                statuses.append(-1)


def _wait_for_answers(statuses: list[int], count: int) -> None:
    """Until `count` more requests answered 200: the server works again after a restart."""
    target = statuses.count(200) + count
    deadline = time.monotonic() + 60
    while statuses.count(200) < target:
        assert time.monotonic() < deadline, f"no recovery: {statuses[-20:]}"
        time.sleep(0.05)
