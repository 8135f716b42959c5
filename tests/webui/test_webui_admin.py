"""Admin pages: dashboard charts, providers (users, git-registered services), users (admin flag,
tier, quota), all tickets (filters, pagination, history, purge)."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest

from dss_server import create_app
from dss_server.models import Service, Ticket, TicketHistory, User, UserTier, utcnow
from dss_server.pages import queries
from dss_server.services import auth
from webui_support import Site, git_service_repo, page_text, post_form, settings_for


@pytest.fixture
def admin(site):
    return site.client(admin=True)


def flashes(client, path) -> list[str]:
    found = re.findall(r'<p class="flash (?:ok|error)">(.*?)</p>', page_text(client.get(path)), re.S)
    return [html.unescape(message) for message in found]


def test_providers_users_and_git_services(site, admin, tmp_path):
    created = post_form(admin, "/admin/providers", {"name": "ui-lab"}, "/admin/providers")
    assert (created.status_code, created.headers["Location"]) == (303, "/admin/providers/ui-lab")
    assert "ui-lab" in page_text(admin.get("/admin/providers"))
    member = site.client("member@example.org")
    page = "/admin/providers/ui-lab"
    post_form(admin, f"{page}/users", {"email": "member@example.org", "admin": "on"}, page)
    assert "member@example.org" in page_text(admin.get(page))
    post_form(admin, f"{page}/users", {"email": "ghost@example.org"}, page)
    assert flashes(admin, page) == ["Email unrecognized by the system"]
    repo, commit = git_service_repo(tmp_path, "UiGitSvc")
    post_form(admin, f"{page}/services", {"repo": str(repo), "ref": "main"}, page)
    assert flashes(admin, page) == [f"Registered service {commit}."]
    assert member.get("/api/pro/services").data.startswith(b"UiGitSvc,1.0.0," + commit.encode())
    post_form(admin, f"{page}/services", {"repo": str(tmp_path / "nowhere"), "ref": ""}, page)
    assert flashes(admin, page) == ["Error fetching Git repository"]
    post_form(admin, f"{page}/services", {"repo": " ", "ref": "main"}, page)
    assert flashes(admin, page) == ["Enter the git repository of the service."]
    post_form(admin, f"{page}/services/{commit}/retire", {}, page)
    assert "No current services" in page_text(admin.get(page))
    post_form(admin, f"{page}/users/{member.user_id}/revoke", {}, page)
    assert flashes(admin, page) == ["member@example.org may no longer serve tickets for ui-lab."]
    assert "member@example.org" not in page_text(admin.get(page))
    post_form(admin, f"{page}/retire", {}, page)
    assert "retired" in page_text(admin.get(page))
    assert admin.get("/admin/providers/nobody").status_code == 404
    post_form(admin, "/admin/providers", {"name": "bad name/.."}, "/admin/providers")
    assert "Invalid provider name" in flashes(admin, "/admin/providers")[0]


def test_revoking_access_a_user_does_not_have_says_so(site, admin):
    post_form(admin, "/admin/providers", {"name": "revoke-lab"}, "/admin/providers")
    page = "/admin/providers/revoke-lab"
    member = site.client("revoke-member@example.org")
    post_form(admin, f"{page}/users/{member.user_id}/revoke", {}, page)
    assert flashes(admin, page) == [
        f"User {member.user_id} has no access to provider revoke-lab"]


def test_user_ids_beyond_64_bits_are_unknown_users_on_sqlite(tmp_path):
    """SQLite cannot compare an integer of 2**63 or more: the id is range-checked first."""
    embedded = Site(create_app(settings_for(f"sqlite:///{tmp_path / 'embedded.sqlite3'}",
                                            tmp_path, {})))
    admin = embedded.client(admin=True)
    post_form(admin, "/admin/providers", {"name": "lite-lab"}, "/admin/providers")
    big = 2 ** 63
    for path, data in [(f"/admin/users/{big}", {"tier": "guest"}),
                       (f"/admin/users/{big}/quota", {"max_tickets": "1"})]:
        assert post_form(admin, path, data, "/admin/users").status_code == 303, path
        assert flashes(admin, "/admin/users") == [f"User {big} not found"], path
    page = "/admin/providers/lite-lab"
    assert post_form(admin, f"{page}/users/{big}/revoke", {}, page).status_code == 303
    assert flashes(admin, page) == [f"User {big} has no access to provider lite-lab"]
    assert admin.get(f"/api/admin/providers/lite-lab/users/{big}/delete").data == b"None"
    embedded.app.extensions["dss_engine"].dispose()


def test_provider_token_for_a_daemon(site, admin):
    post_form(admin, "/admin/providers", {"name": "daemon-lab"}, "/admin/providers")
    githash = site.service("DaemonSvc", provider="daemon-lab")
    page = "/admin/providers/daemon-lab"
    issued = post_form(admin, f"{page}/token", {"email": "daemon@daemon-lab.example"}, page)
    assert issued.status_code == 200 and issued.headers["Cache-Control"] == "no-store"
    token = re.search(r'<code id="token">([0-9a-f]{48})</code>', page_text(issued)).group(1)
    for _ in range(2):  # reusable, unlike a login token
        daemon = site.app.test_client()
        assert daemon.post("/api/login", data={"token": token}).status_code == 200
    assert githash.encode() in daemon.get("/api/pro/services").data
    post_form(admin, f"{page}/token", {"email": "not an email"}, page)
    assert "Not an email address" in flashes(admin, page)[0]
    post_form(admin, f"{page}/token", {"email": admin.email}, page)
    assert flashes(admin, page) == [
        f"Provider tokens are for service accounts, and {admin.email} is an administrator: "
        "use a dedicated account for the provider's daemon"]
    assert f"<td>{admin.email}</td>" not in page_text(admin.get(page))  # grant rolled back
    with site.sessions() as db:
        daemon_id = auth.find_user(db, "daemon@daemon-lab.example").id
    post_form(admin, f"{page}/users/{daemon_id}/revoke", {}, page)
    assert site.app.test_client().post("/api/login", data={"token": token}).status_code == 401
    assert post_form(admin, "/admin/providers/nobody/token", {"email": "x@example.org"},
                     page).status_code == 404


def test_users_admin_flag_tier_and_quota(site, admin):
    user = site.client("promote-me@example.org")
    assert user.get("/admin").status_code == 403
    post_form(admin, f"/admin/users/{user.user_id}", {"sysadmin": "on", "tier": "guest"},
              "/admin/users")
    assert user.get("/admin").status_code == 200
    with site.sessions() as db:
        assert db.get(User, user.user_id).tier == "guest"
    post_form(admin, f"/admin/users/{user.user_id}", {"tier": "nonsense"}, "/admin/users")
    assert flashes(admin, "/admin/users") == ["Unknown tier 'nonsense'"]
    post_form(admin, f"/admin/users/{admin.user_id}", {"tier": "poweruser"}, "/admin/users")
    assert "cannot remove your own admin" in flashes(admin, "/admin/users")[0]
    with site.sessions() as db:
        previous = db.get(UserTier, "xnat").max_tickets
    post_form(admin, "/admin/tiers/xnat", {"max_tickets": "12"}, "/admin/users")
    assert flashes(admin, "/admin/users") == ["Tier xnat now allows 12 open tickets."]
    post_form(admin, "/admin/tiers/xnat", {"max_tickets": "many"}, "/admin/users")
    assert "whole number" in flashes(admin, "/admin/users")[0]
    post_form(admin, "/admin/tiers/xnat", {"max_tickets": str(previous)}, "/admin/users")
    assert post_form(admin, "/admin/users/999999", {"tier": "guest"}, "/admin/users") \
        .status_code == 303
    assert flashes(admin, "/admin/users") == ["User 999999 not found"]


def test_a_provider_daemons_account_is_not_made_an_admin(site, admin):
    daemon = site.client("daemon-promote@example.org")
    with site.sessions() as db:
        auth.issue_token(db, db.get(User, daemon.user_id), reusable=True)
        db.commit()
    post_form(admin, f"/admin/users/{daemon.user_id}", {"sysadmin": "on", "tier": "guest"},
              "/admin/users")
    assert flashes(admin, "/admin/users") == [
        "daemon-promote@example.org holds provider tokens, so it is a provider daemon's account: "
        "an administrator needs an account of their own"]
    assert daemon.get("/admin").status_code == 403


def test_the_quota_limits_new_tickets(site, admin):
    githash = site.service("QuotaSvc")
    user = site.client("quota@example.org")
    post_form(admin, f"/admin/users/{user.user_id}", {"tier": "guest"}, "/admin/users")
    with site.sessions() as db:
        guest_quota = db.get(UserTier, "guest").max_tickets
    post_form(admin, "/admin/tiers/guest", {"max_tickets": "1"}, "/admin/users")
    try:
        assert user.post("/api/tickets", data={"githash": githash}).status_code == 200
        refused = user.post("/api/tickets", data={"githash": githash})
        assert refused.status_code == 400 and b"(1) exceeded" in refused.data
    finally:
        post_form(admin, "/admin/tiers/guest", {"max_tickets": str(guest_quota)}, "/admin/users")


def test_dashboard_draws_charts_and_queue_depth(site, admin):
    githash = site.service("DashSvc", provider="dash-lab")
    provider = site.provider_client("dash-lab")
    owner = site.client()
    done = site.submit(owner, githash)
    site.submit(owner, githash)
    provider.post("/api/pro/services/claims", data={"services": githash, "provider": "dash-lab"})
    provider.post(f"/api/pro/tickets/{done}/status", data={"status": "success"})
    text = page_text(admin.get("/admin"))
    assert text.count("<svg") == 3
    assert re.search(r"<title>[0-9-]+ \d\d:00 success: \d+</title>", text)
    assert re.search(r"<title>DashSvc: median [0-9.]+ s", text)
    assert "<td>DashSvc</td><td>1.0.0</td><td>1</td><td>0</td>" in text


def test_hourly_chart_counts_each_ticket_once_per_hour_under_its_last_status(site, admin):
    githash = site.service("HourSvc")
    ticket = site.submit(site.client(), githash)
    hour = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    with site.sessions() as db:
        before = queries.tickets_per_hour(db, 72)[1]
        db.add_all(TicketHistory(ticket_id=ticket, status=status, atime=hour + timedelta(minutes=i))
                   for i, status in enumerate(("init", "ready", "claimed", "success"), 1))
        db.commit()
        hours, after = queries.tickets_per_hour(db, 72)
    column = hours.index(hour)
    change = {status: after[status][column] - before.get(status, [0] * 72)[column]
              for status in after}
    assert {status: n for status, n in change.items() if n} == {"success": 1}
    assert 'class="chart wide"' in page_text(admin.get("/admin"))


def test_all_tickets_filters_pagination_history_and_purge(site, admin, monkeypatch):
    githash = site.service("FilterSvc")
    other = site.service("OtherSvc")
    alice, bob = site.client("alice.filter@example.org"), site.client("bob.filter@example.org")
    alices = [site.submit(alice, githash) for _ in range(3)]
    bobs = site.submit(bob, other)
    text = page_text(admin.get("/admin/tickets?service=FilterSvc"))
    assert all(f"/admin/tickets/{t}\"" in text for t in alices) and f"/{bobs}\"" not in text
    text = page_text(admin.get("/admin/tickets?user=bob.filter&status=ready"))
    assert f"/admin/tickets/{bobs}\"" in text and "1 found" in text
    assert "0 found" in page_text(admin.get("/admin/tickets?user=bob.filter&status=success"))
    assert "0 found" in page_text(admin.get("/admin/tickets?user=%25"))  # LIKE is escaped
    assert "0 found" in page_text(admin.get("/admin/tickets?since=2099-01-01&user=alice.filter"))
    assert "3 found" in page_text(admin.get("/admin/tickets?until=2099-01-01&user=alice.filter"))
    for bad in ("status=nope", "since=yesterday", "page=0", "page=x"):
        response = admin.get(f"/admin/tickets?{bad}")
        assert response.status_code == 400 and "Traceback" not in page_text(response), bad
    monkeypatch.setattr(queries, "ADMIN_PAGE_SIZE", 2)
    first = page_text(admin.get("/admin/tickets?user=alice.filter"))
    assert "Page 1 of 2" in first and "older ›" in first and "user=alice.filter" in first
    second = page_text(admin.get("/admin/tickets?user=alice.filter&page=2"))
    assert f"/admin/tickets/{alices[0]}\"" in second and f"/{alices[2]}\"" not in second
    history = page_text(admin.get(f"/admin/tickets/{alices[0]}"))
    assert '<span class="status init">init</span>' in history and "Never claimed" in history
    assert admin.get("/admin/tickets/424242424").status_code == 404
    with site.sessions() as db:  # make alice's first ticket old and finished
        ticket = db.get(Ticket, alices[0])
        ticket.status = "failed"
        for row in db.query(TicketHistory).filter_by(ticket_id=ticket.id):
            row.atime = row.atime.replace(year=2020)
        db.commit()
    purged = post_form(admin, "/admin/tickets/purge", {"scope": "completed", "days": "30"},
                       "/admin/tickets")
    assert purged.status_code == 303
    assert "Purged 1 tickets." in flashes(admin, "/admin/tickets")
    assert alice.get(f"/api/tickets/{alices[0]}/status").data == b"deleted"
    assert alice.get(f"/api/tickets/{alices[1]}/status").data == b"ready"
    post_form(admin, "/admin/tickets/purge", {"scope": "completed", "days": "-1"}, "/admin/tickets")
    assert "must not be negative" in flashes(admin, "/admin/tickets")[0]
    post_form(admin, "/admin/tickets/purge", {"scope": "all", "days": "99999999"}, "/admin/tickets")
    assert flashes(admin, "/admin/tickets") == [
        "The purge interval must be at most 36525 days (100 years)"]
    assert post_form(admin, "/admin/tickets/purge", {"scope": "everything"},
                     "/admin/tickets").status_code == 400
    with site.sessions() as db:
        assert db.get(Service, githash) is not None



def test_the_pager_links_carry_the_filters_and_nothing_else(site, admin, monkeypatch):
    githash = site.service("PagerSvc")
    carol = site.client("carol.pager@example.org")
    for _ in range(3):
        site.submit(carol, githash)
    monkeypatch.setattr(queries, "ADMIN_PAGE_SIZE", 2)
    for stray in ("endpoint=x", "_method=POST", "values=1", "_external=1",
                  "_anchor=%22%3E%3Cscript%3E", "_scheme=javascript&_external=1"):
        response = admin.get(f"/admin/tickets?user=carol.pager&page=2&{stray}")
        assert response.status_code == 200, stray
        newer = re.search(r'<a href="([^"]*)">‹ newer', page_text(response)).group(1)
        assert newer == "/admin/tickets?page=1&amp;user=carol.pager", stray


def test_the_last_day_there_is_ends_the_ticket_list_without_error(site, admin):
    githash = site.service("LastDaySvc")
    dave = site.client("dave.lastday@example.org")
    site.submit(dave, githash)
    response = admin.get("/admin/tickets?until=9999-12-31&user=dave.lastday")
    assert response.status_code == 200 and "1 found" in page_text(response)
    assert "0 found" in page_text(admin.get("/admin/tickets?since=9999-12-31&user=dave.lastday"))
