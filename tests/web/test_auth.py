"""Login, tokens, sessions and NOAUTH (spec c.1, 0.1 rules 4-5, h.5)."""
import re

import pytest

from dss_server import create_app
from dss_server.services import auth
from web_support import Harness, make_config


def test_login_answers_logged_in_as_with_a_host_only_year_long_cookie(harness):
    token = harness.token("alice@example.org")
    client = harness.app.test_client()
    response = client.post("/api/login", data={"token": token})
    assert response.status_code == 200
    assert response.data == b"logged in as alice@example.org \n"
    cookie = response.headers["Set-Cookie"]
    assert re.match(r"^webpy_session_id=[0-9a-f]{40};", cookie)
    assert "Domain" not in cookie and "Path=/" in cookie and "HttpOnly" in cookie
    assert "Max-Age=31536000" in cookie
    assert client.get("/api/login").data == b"logged in as alice@example.org \n"


def test_login_json_as_the_gui_sends_it(harness):
    token = harness.token("gui@example.org")
    client = harness.app.test_client()
    response = client.post("/api/login?format=json", data={"token": token})
    assert response.status_code == 200
    assert response.json == {"result": {"email": "gui@example.org"}}
    assert client.get("/api/login?format=json").json == {"result": {"email": "gui@example.org"}}


def test_login_token_is_single_use_provider_token_is_reusable(harness):
    single = harness.token("once@example.org")
    client = harness.app.test_client()
    assert client.post("/api/login", data={"token": single}).status_code == 200
    again = harness.app.test_client().post("/api/login", data={"token": single})
    assert (again.status_code, again.data) == (401, b"unauthorized")
    reusable = harness.token("robot@example.org", reusable=True)
    for _ in range(2):
        assert harness.app.test_client().post("/api/login", data={"token": reusable}).status_code == 200


def test_tokens_are_stored_hashed(harness):
    token = harness.token("hashed@example.org")
    with harness.sessions() as db:
        from sqlalchemy import select

        from dss_server.models import Token
        stored = db.scalars(select(Token.token_hash)).all()
    assert token not in stored and auth.digest(token) in stored


def test_login_gives_a_new_session_and_ends_the_one_sent(harness):
    """Session fixation: an attacker's session id planted in a victim's client must not become
    the victim's session when the victim logs in."""
    planted = harness.client("attacker@example.org").get_cookie("webpy_session_id").value
    victim = harness.app.test_client()
    victim.set_cookie("webpy_session_id", planted)
    assert victim.post("/api/login", data={"token": harness.token("victim@example.org")}
                       ).data == b"logged in as victim@example.org \n"
    issued = victim.get_cookie("webpy_session_id").value
    assert re.fullmatch(r"[0-9a-f]{40}", issued) and issued != planted
    assert victim.get("/api/login").data == b"logged in as victim@example.org \n"
    attacker = harness.app.test_client()
    attacker.set_cookie("webpy_session_id", planted)
    assert attacker.get("/api/login").status_code == 401


def test_a_token_in_the_url_is_refused_and_not_used_up(harness):
    """URLs end up in access logs: the token is accepted in the body only (as every client
    sends it); `format=json` in the query still works (the GUI's login)."""
    token = harness.token("query@example.org")
    client = harness.app.test_client()
    refused = client.post(f"/api/login?token={token}")
    assert refused.status_code == 400 and b"request body" in refused.data
    assert client.post(f"/api/login?format=json&token={token}", data={"token": token}
                       ).status_code == 400
    assert client.post("/api/login?format=json", data={"token": token}).json == {
        "result": {"email": "query@example.org"}}


def test_every_api_answer_forbids_content_sniffing(harness):
    client = harness.client("sniff@example.org")
    answers = [client.get("/api/login"), client.get("/api/tickets"),
               client.get("/api/tickets/999999/detail"), client.get("/api/no-such-route"),
               harness.app.test_client().get("/api/tickets"),
               harness.app.test_client().post("/api/login", data={})]
    assert [a.headers.get("X-Content-Type-Options") for a in answers] == ["nosniff"] * 6
    assert {a.status_code for a in answers} >= {200, 400, 401, 404}


def test_not_logged_in_is_401_with_the_original_text(harness):
    client = harness.app.test_client()
    for url in ("/api/login", "/api/services", "/api/tickets", "/api/pro/services"):
        response = client.get(url)
        assert (response.status_code, response.data) == (401, b"You are not logged in!")
    assert client.get("/api/tickets", headers={"Accept": "application/json"}).json == {
        "error": "You are not logged in!"}
    # format=json switches lists, not errors: the GUI logs in with it and shows the error text
    assert client.get("/api/login?format=json").data == b"You are not logged in!"
    refused = client.post("/api/login?format=json", data={"token": "0" * 48})
    assert (refused.status_code, refused.data) == (401, b"unauthorized")


def test_bad_token_kills_the_session(harness):
    client = harness.client("bad@example.org")
    response = client.post("/api/login", data={"token": "0" * 48})
    assert (response.status_code, response.data) == (401, b"unauthorized")
    assert client.get("/api/login").status_code == 401


def test_missing_token_is_400(harness):
    response = harness.app.test_client().post("/api/login", data={})
    assert response.status_code == 400 and b"token" in response.data


def test_api_token_needs_accepted_terms_and_issues_a_working_token(harness):
    client = harness.client("terms@example.org")
    assert (client.get("/api/token").status_code, client.get("/api/token").data) == (
        401, b"Unauthorized access")
    with harness.sessions() as db:
        auth.set_accept_terms(db, client.get_cookie("webpy_session_id").value, True)
        db.commit()
    token = client.get("/api/token").data.decode()
    assert re.fullmatch(r"[0-9a-f]{48}", token)
    other = harness.app.test_client()
    assert other.post("/api/login", data={"token": token}).data == b"logged in as terms@example.org \n"


def test_noauth_makes_cookieless_requests_the_test_admin(make_harness):
    harness = make_harness(noauth=True)
    client = harness.app.test_client()
    assert client.get("/api/login").data == b"logged in as test@example.com \n"
    assert re.fullmatch(rb"[0-9a-f]{48}", client.get("/api/token").data)
    assert client.get("/api/admin/providers").status_code == 200


def test_noauth_first_requests_racing_create_the_test_user_once(make_database, tmp_path):
    import threading

    from dss_server import create_app
    from dss_server import db as database
    from web_support import Harness, make_config
    url = make_database("dss_noauth_race")
    database.migrate(database.make_engine(url))
    harness = Harness(create_app(make_config(url, tmp_path, noauth=True)))
    answers = []

    def ask():
        answers.append(harness.app.test_client().get("/api/login").status_code)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 8


def test_cookie_is_secure_and_blob_links_https_behind_a_tls_proxy(harness):
    token = harness.token("proxied@example.org")
    response = harness.app.test_client().post(
        "/api/login", data={"token": token},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "dss.example.org"})
    assert "Secure" in response.headers["Set-Cookie"]
    plain = harness.app.test_client().post("/api/login", data={"token": harness.token("plain@example.org")})
    assert "Secure" not in plain.headers["Set-Cookie"]


@pytest.fixture(params=["postgresql", "sqlite"])
def any_harness(request, harness, tmp_path):
    """The PostgreSQL harness (identity read on the autocommit pool), or an embedded SQLite
    one (identity read in the request's session)."""
    if request.param == "postgresql":
        return harness
    url = f"sqlite:///{tmp_path / 'embedded.sqlite3'}"
    return Harness(create_app(make_config(url, tmp_path / "sqlite")))


def test_sessions_idle_for_a_year_are_logged_out(any_harness):
    from datetime import timedelta

    from dss_server.models import utcnow
    harness = any_harness
    client = harness.client("idle@example.org")
    with harness.sessions() as db:
        session = auth.find_session(db, client.get_cookie("webpy_session_id").value)
        session.atime = utcnow() - timedelta(days=364)
        db.commit()
    assert client.get("/api/login").status_code == 200
    with harness.sessions() as db:
        session = auth.find_session(db, client.get_cookie("webpy_session_id").value)
        assert session.atime > utcnow() - timedelta(minutes=1), "use refreshes the session"
        session.atime = utcnow() - timedelta(days=366)
        db.commit()
    assert client.get("/api/login").status_code == 401
