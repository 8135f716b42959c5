"""Home, about, the token page (terms, then a fresh token) and the services pages."""
from __future__ import annotations

import re
from datetime import timedelta

from dss_server.models import Service, utcnow
from webui_support import form_token, page_text, post_form


def test_home_and_about_explain_how_to_connect(site):
    client = site.app.test_client()
    for path in ("/", "/about"):
        text = page_text(client.get(path))
        assert "http://localhost" in text and "Get Token" in text
        assert "Sign in" in text
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/app.js").status_code == 200


def test_pages_forbid_framing_and_foreign_scripts(site):
    headers = site.app.test_client().get("/").headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"


def test_noauth_shows_a_banner_and_everyone_is_the_test_admin(make_site, site):
    test_mode = make_site(noauth=True).app.test_client()
    text = page_text(test_mode.get("/"))
    assert "Test mode" in text and "test@example.com" in text
    assert test_mode.get("/admin").status_code == 200
    made = post_form(test_mode, "/admin/providers", {"name": "noauth-lab"}, "/admin/providers")
    assert made.headers["Location"] == "/admin/providers/noauth-lab"  # forms work without a sign-in
    assert "Sign out" not in text
    assert "Test mode" not in page_text(site.app.test_client().get("/"))


def test_anonymous_visitors_are_sent_to_sign_in_and_back(site):
    response = site.app.test_client().get("/token")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/token"


def test_token_page_asks_for_the_terms_first(site):
    client = site.client()
    assert "I accept these terms" in page_text(client.get("/token"))
    assert client.get("/api/token").status_code == 401
    declined = post_form(client, "/acceptterms", {}, token_from="/token")
    assert declined.status_code == 303
    assert "need to accept" in page_text(client.get("/token"))
    accepted = post_form(client, "/acceptterms", {"cb": "on"}, token_from="/token")
    assert (accepted.status_code, accepted.headers["Location"]) == (303, "/token")
    page = page_text(client.get("/token"))
    assert "Show my token" in page and not re.search(r"\b[0-9a-f]{48}\b", page)


def shown_token(response) -> str:
    found = re.search(r'<code id="token">([0-9a-f]{48})</code>', page_text(response))
    assert found, page_text(response)
    return found.group(1)


def test_token_is_issued_by_post_and_works_once_in_itk_snap(site):
    client = site.client()
    post_form(client, "/acceptterms", {"cb": "on"}, token_from="/token")
    issued = post_form(client, "/token", token_from="/token")
    assert issued.headers["Cache-Control"] == "no-store"
    first = shown_token(issued)
    second = shown_token(post_form(client, "/token", token_from="/token"))
    assert first != second
    itk_snap = site.app.test_client()
    assert itk_snap.post("/api/login", data={"token": first}).status_code == 401
    assert itk_snap.post("/api/login", data={"token": second}).data == \
        f"logged in as {client.email} \n".encode()


def test_services_page_shows_descriptions_tags_and_badges(site):
    githash = site.service("BadgeSvc", provider="badge-lab", longdesc="Finds lungs",
                           url="https://example.org/lungs")
    client = site.client()
    site.submit(site.client(), githash)
    text = page_text(client.get("/services"))
    assert "BadgeSvc" in text and "Finds lungs" in text and "https://example.org/lungs" in text
    assert "CT (MainImage, required)" in text
    assert '<span class="badge green">heard from' in text
    assert '<span class="badge cyan">no tickets in 24 h' in text
    assert '<span class="badge green">1 queued' in text
    with site.sessions() as db:
        db.get(Service, githash).pingtime = utcnow() - timedelta(hours=2)
        db.commit()
    assert '<span class="badge red">heard from 2 h ago' in page_text(client.get("/services"))


def test_service_page_shows_its_service_json(site):
    githash = site.service("JsonSvc", citation="Someone et al. <2026>")
    text = page_text(site.client().get(f"/services/{githash}"))
    assert "&#34;citation&#34;: &#34;Someone et al. &lt;2026&gt;&#34;" in text  # escaped
    assert githash in text
    assert "<dt>citation</dt><dd>Someone et al. &lt;2026&gt;</dd>" in text
    assert ("<tr><td>CT</td><td>MainImage</td><td>yes</td><td>chest CT</td></tr>" in text
            and "<p class=\"long\">A longer description</p>" in text)  # readable, not only JSON
    missing = site.client().get(f"/services/{'0' * 40}")
    assert missing.status_code == 404 and "No service" in page_text(missing)
    assert site.client().get("/services/not-a-hash").status_code == 404


def test_a_service_url_that_is_not_http_is_not_linked(site):
    site.service("ScriptSvc", url="javascript:alert(1)")
    assert "javascript:alert" not in page_text(site.client().get("/services"))


def test_each_browser_session_has_its_own_form_token(site):
    one, two = site.client(), site.client()
    cookie = one.get("/").headers["Set-Cookie"]
    assert cookie.startswith("session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert form_token(one) == form_token(one)
    assert form_token(one) != form_token(two)
