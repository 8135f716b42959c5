"""Access rules and CSRF: every form needs the session's token; admin pages are for admins."""
from __future__ import annotations

import pytest

from webui_support import form_token, page_text

ADMIN_PAGES = ("/admin", "/admin/users", "/admin/providers", "/admin/providers/some-lab",
               "/admin/tickets", "/admin/tickets/1")
ADMIN_POSTS = ("/admin/providers", "/admin/providers/some-lab/retire",
               "/admin/providers/some-lab/users", "/admin/providers/some-lab/users/1/revoke",
               "/admin/providers/some-lab/token",
               "/admin/providers/some-lab/services",
               f"/admin/providers/some-lab/services/{'a' * 40}/retire", "/admin/users/1",
               "/admin/tiers/guest", "/admin/tickets/purge")
USER_POSTS = ("/acceptterms", "/token", "/logout", "/login/token", "/tickets/1/retry",
              "/tickets/1/delete")


@pytest.mark.parametrize("path", ADMIN_POSTS + USER_POSTS)
def test_posts_without_the_form_token_are_refused(site, path):
    admin = site.client(admin=True)
    form_token(admin)  # the session has a token; the POSTs below do not carry it
    for data in ({}, {"csrf_token": "forged"}):
        response = admin.post(path, data={**data, "name": "csrf-lab", "token": "x"})
        assert response.status_code == 400, path
        assert "CSRF" in page_text(response)
    other_session = site.client(admin=True)
    stolen = admin.post(path, data={"csrf_token": form_token(other_session)})
    assert stolen.status_code == 400
    assert admin.get("/api/login").status_code == 200  # nothing happened, still signed in


CROSS_SITE = ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
              {"Origin": "https://evil.example"}, {"Origin": "null"})
OWN_SITE = ({}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},
            {"Origin": "http://localhost"})


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_other_web_sites_cannot_use_the_api_with_a_visitors_session(site, headers):
    """An <img>, link or form on another site sends the browser's cookie along: no effect."""
    user, admin = site.client(), site.client(admin=True)
    ticket = site.submit(user, site.service())
    deleted = user.get(f"/api/tickets/{ticket}/delete", headers=headers)
    assert deleted.status_code == 403 and b"Cross-site request refused" in deleted.data
    made = admin.post("/api/admin/providers", data={"name": "cross-lab"}, headers=headers)
    assert made.status_code == 403
    switched = user.post("/api/login", data={"token": site.token("mallory@example.org")},
                         headers=headers)
    assert switched.status_code == 403
    assert user.get(f"/api/tickets/{ticket}/status").data == b"ready"
    assert user.get("/api/login").data == f"logged in as {user.email} \n".encode()
    assert b"cross-lab" not in admin.get("/api/admin/providers").data


@pytest.mark.parametrize("headers", OWN_SITE)
def test_the_api_answers_clients_browsers_on_this_site_and_typed_urls(site, headers):
    user = site.client()
    ticket = site.submit(user, site.service())
    assert user.get(f"/api/tickets/{ticket}/delete", headers=headers).data == b"deleted"


def test_the_session_cookie_stays_home(site):
    cookie = site.app.test_client().post(
        "/api/login", data={"token": site.token("lax@example.org")}).headers["Set-Cookie"]
    assert cookie.startswith("webpy_session_id=") and "SameSite=Lax" in cookie


def test_the_csrf_refusal_changes_nothing(site):
    admin = site.client(admin=True)
    admin.post("/admin/providers", data={"name": "never-made"})
    assert b"never-made" not in admin.get("/api/admin/providers").data


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_non_admins_get_403_on_admin_pages(site, path):
    response = site.client().get(path)
    assert response.status_code == 403
    assert "administrators only" in page_text(response)


@pytest.mark.parametrize("path", ADMIN_POSTS)
def test_non_admins_cannot_post_admin_forms(site, path):
    user = site.client()
    response = user.post(path, data={"csrf_token": form_token(user), "name": "sneaky-lab",
                                     "email": user.email, "sysadmin": "on", "tier": "xnat",
                                     "max_tickets": "100000", "scope": "all", "days": "0"})
    assert response.status_code == 403
    assert user.get("/admin").status_code == 403


@pytest.mark.parametrize("path", ADMIN_PAGES + ("/token", "/services", "/tickets", "/tickets/1"))
def test_anonymous_visitors_are_sent_to_sign_in(site, path):
    response = site.app.test_client().get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_admin_nav_links_only_for_admins(site):
    assert "/admin/providers" not in page_text(site.client().get("/"))
    assert "/admin/providers" in page_text(site.client(admin=True).get("/"))


def test_unknown_pages_and_methods_stay_clear(site):
    client = site.client()
    assert client.get("/admin/nothing-here").status_code in (403, 404)
    assert client.delete("/tickets").status_code == 405
    assert client.get("/logout").status_code == 405
