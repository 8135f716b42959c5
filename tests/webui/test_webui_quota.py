"""The per-user ticket quota on /admin/users (issue 6): set, clear, effective value, access."""
from __future__ import annotations

import html
import re

import pytest

from dss_server.models import User, UserTier
from webui_support import form_token, page_text, post_form


@pytest.fixture
def admin(site):
    return site.client(admin=True)


def user_row(client, email: str) -> str:
    """The <tr> of the user on /admin/users."""
    rows = re.findall(r"<tr>.*?</tr>", page_text(client.get("/admin/users")), re.S)
    return next(row for row in rows if f"<td>{email}</td>" in row)


def shown_quota(client, email: str) -> tuple[str, str, str]:
    """(the field's value, the effective quota, where it comes from) as the page shows them."""
    row = user_row(client, email)
    field = re.search(r'name="max_tickets"[^>]*value="([^"]*)"', row).group(1)
    effective, source = re.search(r"effective (\d+) \(([^)]*)\)", row).groups()
    return field, effective, source


def flashes(client) -> list[str]:
    found = re.findall(r'<p class="flash (?:ok|error)">(.*?)</p>',
                       page_text(client.get("/admin/users")), re.S)
    return [html.unescape(message) for message in found]


def stored_quota(site, user_id: int) -> int | None:
    with site.sessions() as db:
        return db.get(User, user_id).max_tickets


def test_the_form_sets_and_clears_the_override(site, admin):
    user = site.client()
    with site.sessions() as db:
        tier_quota = db.get(UserTier, "poweruser").max_tickets
    assert shown_quota(admin, user.email) == ("", str(tier_quota), "tier poweruser")
    path = f"/admin/users/{user.user_id}/quota"
    saved = post_form(admin, path, {"max_tickets": "3"}, "/admin/users")
    assert (saved.status_code, saved.headers["Location"]) == (303, "/admin/users")
    assert flashes(admin) == [f"Saved the ticket quota of {user.email}."]
    assert stored_quota(site, user.user_id) == 3
    assert shown_quota(admin, user.email) == ("3", "3", "own")
    post_form(admin, path, {"max_tickets": " "}, "/admin/users")
    assert stored_quota(site, user.user_id) is None
    assert shown_quota(admin, user.email) == ("", str(tier_quota), "tier poweruser")


def test_the_override_limits_new_tickets(site, admin):
    githash = site.service("UserQuotaSvc")
    user = site.client()
    post_form(admin, f"/admin/users/{user.user_id}/quota", {"max_tickets": "1"}, "/admin/users")
    assert user.post("/api/tickets", data={"githash": githash}).status_code == 200
    refused = user.post("/api/tickets", data={"githash": githash})
    assert (refused.status_code, refused.data) == (
        400, b"Maximum allowed number of open tickets (1) exceeded.")


@pytest.mark.parametrize("value, reason", [("many", "whole number"), ("-1", "between 0 and"),
                                           (str(2 ** 31), "between 0 and")])
def test_bad_values_are_refused_and_change_nothing(site, admin, value, reason):
    user = site.client()
    post_form(admin, f"/admin/users/{user.user_id}/quota", {"max_tickets": "5"}, "/admin/users")
    flashes(admin)  # consume the success message
    post_form(admin, f"/admin/users/{user.user_id}/quota", {"max_tickets": value}, "/admin/users")
    assert reason in flashes(admin)[0]
    assert stored_quota(site, user.user_id) == 5


def test_an_unknown_user_is_a_clear_error(admin):
    assert post_form(admin, "/admin/users/999999/quota", {"max_tickets": "1"},
                     "/admin/users").status_code == 303
    assert flashes(admin) == ["User 999999 not found"]


def test_non_admins_get_403(site):
    user = site.client()
    response = user.post(f"/admin/users/{user.user_id}/quota",
                         data={"csrf_token": form_token(user), "max_tickets": "100000"})
    assert response.status_code == 403
    assert stored_quota(site, user.user_id) is None


def test_posts_without_the_form_token_are_refused(site, admin):
    user = site.client()
    form_token(admin)  # the session has a token; the POSTs below do not carry it
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": form_token(site.client(admin=True))}):
        response = admin.post(f"/admin/users/{user.user_id}/quota",
                              data={**data, "max_tickets": "7"})
        assert response.status_code == 400 and "CSRF" in page_text(response)
    assert stored_quota(site, user.user_id) is None
