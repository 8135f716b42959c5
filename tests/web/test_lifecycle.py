"""Walk the transition table through the API: legal transitions succeed, all others are 4xx."""
import pytest

from dss_server import lifecycle
from dss_server.models import Ticket

STATES = ("init", "ready", "claimed", "success", "failed", "timeout", "deleted")
API_EVENTS = [("ready", lifecycle.OWNER), ("ready", lifecycle.ADMIN),
              ("retry", lifecycle.OWNER), ("retry", lifecycle.ADMIN),
              ("delete", lifecycle.OWNER), ("delete", lifecycle.ADMIN),
              ("success", lifecycle.PROVIDER), ("failed", lifecycle.PROVIDER)]


@pytest.fixture
def world(harness):
    return dict(harness=harness, owner=harness.client(),
                admin=harness.client(admin=True), provider=harness.provider_client("walkers"))


def bring_to(world, state):
    harness, owner, provider = world["harness"], world["owner"], world["provider"]
    world["githash"] = harness.service(provider="walkers")  # its own queue: no leftovers
    ticket = int(owner.post("/api/tickets", data={"githash": world["githash"]}).data)
    if state == "init":
        return ticket
    owner.post(f"/api/tickets/{ticket}/status", data={"status": "ready"})
    if state == "ready":
        return ticket
    if state == "deleted":
        owner.get(f"/api/tickets/{ticket}/delete")
        return ticket
    claimed = provider.post("/api/pro/services/claims",
                            data={"services": world["githash"], "provider": "walkers"})
    assert claimed.data.startswith(f"{ticket},".encode())
    if state in ("success", "failed"):
        provider.post(f"/api/pro/tickets/{ticket}/status", data={"status": state})
    if state == "timeout":  # only the lease sweeper gets here; seed it directly
        with harness.sessions() as db:
            row = db.get(Ticket, ticket)
            row.status, row.claim_id = "timeout", None
            db.commit()
    return ticket


def trigger(world, ticket, event, actor):
    if actor == lifecycle.PROVIDER:
        return world["provider"].post(f"/api/pro/tickets/{ticket}/status", data={"status": event})
    client = world["owner"] if actor == lifecycle.OWNER else world["admin"]
    if event == "ready":
        return client.post(f"/api/tickets/{ticket}/status", data={"status": "ready"})
    return client.get(f"/api/tickets/{ticket}/{event}")


@pytest.mark.parametrize("state", STATES)
def test_every_api_event_from_every_state(world, state):
    for event, actor in API_EVENTS:
        ticket = bring_to(world, state)
        assert world["owner"].get(f"/api/tickets/{ticket}/status").data == state.encode()
        response = trigger(world, ticket, event, actor)
        if lifecycle.allowed(state, event, {actor}):
            expected = lifecycle.transition(state, event, {actor})
            assert (response.status_code, response.data) == (200, expected.encode()), (event, actor)
            assert world["owner"].get(f"/api/tickets/{ticket}/status").data == expected.encode()
        else:
            assert 400 <= response.status_code < 500, (state, event, actor, response.data)
            assert response.data, "a refusal says why"
            assert world["owner"].get(f"/api/tickets/{ticket}/status").data == state.encode()


@pytest.mark.parametrize("state", [s for s in STATES if s != "ready"])
def test_only_ready_tickets_are_claimed(world, state):
    ticket = bring_to(world, state)
    response = world["provider"].post("/api/pro/services/claims",
                                      data={"services": world["githash"], "provider": "walkers"})
    assert response.data == b"None"
    assert world["owner"].get(f"/api/tickets/{ticket}/status").data == state.encode()


def test_table_renders_as_markdown():
    table = lifecycle.markdown_table()
    assert table.startswith("| from | event | to | who | how |\n|---|---|---|---|---|\n")
    assert len(table.strip().splitlines()) == 2 + len(lifecycle.TRANSITIONS)
    assert "| ready | claim | claimed | provider |" in table


def test_unknown_transition_explains_itself():
    with pytest.raises(lifecycle.IllegalTransition, match="whose status is success"):
        lifecycle.transition("success", "ready", {lifecycle.OWNER})
    with pytest.raises(lifecycle.IllegalTransition, match="Only the admin"):
        lifecycle.transition("success", "retry", {lifecycle.OWNER})


def test_the_docs_print_this_very_table():
    from helpers import REPO_ROOT
    assert lifecycle.markdown_table() in (REPO_ROOT / "docs" / "web-server.md").read_text()
