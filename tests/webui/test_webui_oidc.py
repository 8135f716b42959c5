"""OIDC sign-in end to end against a provider on loopback (PKCE); forged id_tokens, unverified
addresses and addresses outside DSS_OIDC_ALLOWED_DOMAINS are refused."""
from __future__ import annotations

import uuid
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests

from dss_server import create_app
from dss_server.config import ConfigError
from dss_server.services import auth
from webui_oidc_provider import FORGERIES, MISSING, OIDCProvider
from webui_support import Site, form_token, page_text, post_form, settings_for


@pytest.fixture(scope="module")
def provider():
    with OIDCProvider() as running:
        yield running


@pytest.fixture(scope="module")
def oidc_app(webui_db, tmp_path_factory, provider):
    settings = settings_for(webui_db, tmp_path_factory.mktemp("oidc"), dict(
        oidc_issuer=provider.issuer, oidc_client_id=provider.client_id,
        oidc_client_secret=provider.client_secret))
    made = Site(create_app(settings))
    yield made
    made.app.extensions["dss_engine"].dispose()


@pytest.fixture
def oidc_site(oidc_app, provider):
    provider.forge, provider.email, provider.email_verified = None, "alice@example.org", True
    return oidc_app


def sign_in(client, next_path="/token"):
    """Browser steps: our /login/oidc -> the provider's authorize -> back to our callback."""
    start = client.get(f"/login/oidc?next={next_path}")
    assert start.status_code == 302, page_text(start)
    authorize = start.headers["Location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["client_id"] == ["dss-web"] and query["nonce"][0] and query["state"][0]
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    back = requests.get(authorize, allow_redirects=False, timeout=10)
    assert back.status_code == 302
    callback = urlsplit(back.headers["Location"])
    assert callback.path == "/login/callback"
    return client.get(f"{callback.path}?{callback.query}")


def user_exists(site, email) -> bool:
    with site.sessions() as db:
        return auth.find_user(db, email) is not None


def test_first_sign_in_creates_the_user_and_an_api_session(oidc_site, provider):
    provider.email = "first.login@example.org"
    assert not user_exists(oidc_site, provider.email)
    client = oidc_site.app.test_client()
    response = sign_in(client, "/tickets")
    assert response.status_code == 303 and response.headers["Location"] == "/tickets"
    assert user_exists(oidc_site, provider.email)
    cookie = client.get_cookie("webpy_session_id")
    assert cookie and len(cookie.value) == 40
    # The browser session is the DSS API session: the API knows who this is.
    assert client.get("/api/login").data == b"logged in as first.login@example.org \n"
    assert provider.email in page_text(client.get("/tickets"))


def test_signing_in_again_keeps_the_user_and_gives_a_fresh_session(oidc_site, provider):
    provider.email = "again@example.org"
    client = oidc_site.app.test_client()
    sign_in(client)
    first = client.get_cookie("webpy_session_id").value
    sign_in(client)
    assert client.get_cookie("webpy_session_id").value != first
    with oidc_site.sessions() as db:
        assert auth.find_user(db, provider.email).dispname == "Alice Example"


@pytest.mark.parametrize("forgery", FORGERIES)
def test_forged_id_tokens_are_refused(oidc_site, provider, forgery):
    provider.email = f"forged-{forgery.replace('_', '-')}@example.org"
    provider.forge = forgery
    client = oidc_site.app.test_client()
    response = sign_in(client)
    assert response.status_code == 401
    assert "Sign-in failed" in page_text(response)
    assert "Traceback" not in page_text(response)
    assert not user_exists(oidc_site, provider.email)
    assert client.get("/api/login").status_code == 401


def test_an_intercepted_code_is_useless_without_the_pkce_verifier(oidc_site, provider):
    """The verifier stays in the server's signed session: whoever sees the redirect back (a
    proxy log, a browser extension) cannot redeem its code."""
    start = oidc_site.app.test_client().get("/login/oidc")
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    code = parse_qs(urlsplit(back.headers["Location"]).query)["code"][0]
    stolen = requests.post(f"{provider.issuer}/token", timeout=10,
                           data={"grant_type": "authorization_code", "code": code},
                           auth=(provider.client_id, provider.client_secret))
    assert stolen.status_code == 400


@pytest.mark.parametrize("verified", [False, "false", MISSING], ids=["false", "string", "missing"])
def test_an_unverified_email_opens_no_account(oidc_site, provider, verified):
    """Accounts are found by email, and anyone may give a provider any address: one the provider
    has not verified must open neither its owner's account nor a new one (which would hold the
    address once the owner arrives)."""
    owner = f"owner-{uuid.uuid4().hex[:8]}@example.org"
    newcomer = f"new-{uuid.uuid4().hex[:8]}@example.org"
    with oidc_site.sessions() as db:
        auth.ensure_user(db, owner)
        db.commit()
    provider.email_verified = verified
    for provider.email in (owner, newcomer):
        client = oidc_site.app.test_client()
        response = sign_in(client)
        assert response.status_code == 403
        assert f"has not verified that {provider.email}" in page_text(response)
        assert client.get("/api/login").status_code == 401
    assert not user_exists(oidc_site, newcomer)


def test_a_verified_flag_sent_as_a_string_is_understood(oidc_site, provider):
    provider.email, provider.email_verified = "stringly@example.org", "true"
    client = oidc_site.app.test_client()
    assert sign_in(client).status_code == 303
    assert client.get("/api/login").data == b"logged in as stringly@example.org \n"


def test_only_addresses_at_the_allowed_domains_sign_in(make_site, provider):
    site = make_site(oidc_issuer=provider.issuer, oidc_client_id=provider.client_id,
                     oidc_client_secret=provider.client_secret,
                     oidc_allowed_domains=("hospital.example",))
    provider.forge, provider.email_verified = None, True
    provider.email = "Doctor@Hospital.Example"
    assert sign_in(site.app.test_client()).status_code == 303
    for provider.email in ("intruder@example.org", "x@lab.hospital.example",
                           "x@hospital.example.evil.org"):
        client = site.app.test_client()
        response = sign_in(client)
        assert response.status_code == 403
        assert "accepts addresses at hospital.example only" in page_text(response)
        assert client.get("/api/login").status_code == 401
        assert not user_exists(site, provider.email)


def test_a_callback_without_a_matching_state_is_refused(oidc_site):
    client = oidc_site.app.test_client()
    response = client.get("/login/callback?code=stolen&state=made-up")
    assert response.status_code == 401
    assert client.get("/api/login").status_code == 401


def test_only_local_return_paths_are_followed(oidc_site, provider):
    provider.email = "redirects@example.org"
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = sign_in(oidc_site.app.test_client(), target)
        assert response.headers["Location"] == "/", target


@pytest.mark.parametrize("target", ["/%09/evil.example", "/%0a/evil.example", "/%0d/x", "/ /x"])
def test_return_paths_with_whitespace_or_control_characters_go_home(site, target):
    """Browsers drop a tab or newline from a Location: `/<tab>/evil.example` is `//evil.example`."""
    signed_in = site.client().get(f"/login?next={target}")
    assert (signed_in.status_code, signed_in.headers["Location"]) == (302, "/")
    token = site.token("whitespace-next@example.org")
    client = site.app.test_client()
    form = post_form(client, "/login/token", {"token": token, "next": unquote(target)},
                     token_from="/login")
    assert (form.status_code, form.headers["Location"]) == (303, "/")


def test_signing_in_gives_the_browser_a_new_form_token(site):
    """A form token planted before the sign-in (e.g. over plain http) is no use afterwards."""
    client = site.app.test_client()
    before = form_token(client, "/login")
    post_form(client, "/login/token", {"token": site.token("rotate@example.org")},
              token_from="/login")
    assert form_token(client) != before
    refused = client.post("/logout", data={"csrf_token": before})
    assert refused.status_code == 400
    assert client.get("/api/login").status_code == 200


def test_the_form_cookie_is_secure_over_https(site):
    plain = site.app.test_client().get("/login").headers["Set-Cookie"]
    secure = site.app.test_client().get("/login", base_url="https://localhost").headers["Set-Cookie"]
    behind_proxy = site.app.test_client().get(
        "/login", headers={"X-Forwarded-Proto": "https"}).headers["Set-Cookie"]
    assert "Secure" not in plain
    assert "; Secure" in secure and "; Secure" in behind_proxy


def test_login_page_offers_single_sign_on_only_when_configured(oidc_site, site):
    assert "/login/oidc" in page_text(oidc_site.app.test_client().get("/login"))
    plain = site.app.test_client()
    assert "not configured" in page_text(plain.get("/login"))
    assert plain.get("/login/oidc").status_code == 404


def test_an_unreachable_provider_is_a_clear_error(make_site):
    from helpers import free_port
    down = make_site(oidc_issuer=f"http://127.0.0.1:{free_port()}", oidc_client_id="x",
                     oidc_client_secret="y")
    response = down.app.test_client().get("/login/oidc")
    assert response.status_code == 502
    assert "cannot be reached" in page_text(response)


def test_a_discovery_document_without_an_authorization_endpoint_is_a_clear_error(make_site):
    with OIDCProvider() as broken:
        broken.discovery_leaves_out = ("authorization_endpoint",)
        site = make_site(oidc_issuer=broken.issuer, oidc_client_id="x", oidc_client_secret="y")
        response = site.app.test_client().get("/login/oidc")
    assert response.status_code == 502
    assert "configuration is unusable" in page_text(response)


def test_issuer_without_client_id_is_a_configuration_error(make_site, provider):
    with pytest.raises(ConfigError, match="DSS_OIDC_CLIENT_ID"):
        make_site(oidc_issuer=provider.issuer)


def test_sign_in_with_a_login_token_and_sign_out(site):
    token = site.token("token-user@example.org")
    client = site.app.test_client()
    response = post_form(client, "/login/token", {"token": token, "next": "/services"},
                         token_from="/login")
    assert (response.status_code, response.headers["Location"]) == (303, "/services")
    assert client.get("/api/login").data == b"logged in as token-user@example.org \n"
    again = site.app.test_client()
    refused = post_form(again, "/login/token", {"token": token}, token_from="/login")
    assert refused.status_code == 401  # login tokens work once
    assert post_form(client, "/logout", token_from="/about").status_code == 303
    assert client.get("/api/login").status_code == 401
    assert client.get("/tickets").status_code == 302
