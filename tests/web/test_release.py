"""Provider release (our extension): claimed -> ready at once, by the claiming session only."""
import io
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from dss_server.models import Ticket, TicketHistory, TicketProgress, utcnow
from dss_server.services import notify


def claim(client, githash, **extra):
    return client.post("/api/pro/services/claims",
                       data={"services": githash, "provider": client.provider, "code": "c1",
                             **extra})


def release(client, ticket, **form):
    return client.post(f"/api/pro/tickets/{ticket}/release", data=form)


@pytest.fixture
def claimed(harness):
    """A ticket claimed by `provider`, with a result file and some progress posted."""
    githash = harness.service(provider="releasers")
    provider = harness.provider_client("releasers")
    user = harness.client()
    ticket = harness.submit(user, githash)
    assert claim(provider, githash).data.startswith(f"{ticket},".encode())
    progress = {"chunk_start": "0", "chunk_end": "1", "progress": "0.5"}
    assert provider.post(f"/api/pro/tickets/{ticket}/progress", data=progress).status_code == 200
    partial = {"myfile": (io.BytesIO(b"partial"), "half.nii.gz"), "filename": "half.nii.gz"}
    assert provider.post(f"/api/pro/tickets/{ticket}/files/results", data=partial,
                         content_type="multipart/form-data").status_code == 200
    preview = {"myfile": (io.BytesIO(b"png"), "preview.png"), "desc": "Preview"}
    assert provider.post(f"/api/pro/tickets/{ticket}/attachments", data=preview,
                         content_type="multipart/form-data").status_code == 200
    return dict(harness=harness, githash=githash, provider=provider, user=user, ticket=ticket)


def test_release_puts_the_ticket_back_in_the_queue(claimed):
    harness, provider, user = claimed["harness"], claimed["provider"], claimed["user"]
    ticket = claimed["ticket"]
    woken_before = notify.generation()
    response = release(provider, ticket, message="instance c1 is shutting down")
    assert (response.status_code, response.data) == (200, b"ready")
    assert notify.generation() > woken_before, "waiting claimers are woken on commit"
    assert user.get(f"/api/tickets/{ticket}/status").data == b"ready"
    log = user.get(f"/api/tickets/{ticket}/log").data.decode()
    assert "Released by provider releasers (instance c1 is shutting down); back in the queue" in log
    assert user.get(f"/api/tickets/{ticket}/files/results").data == b"", "results are wiped"
    detail = user.get(f"/api/tickets/{ticket}/detail").json["result"]
    assert [entry["attachments"] for entry in detail["log"] if entry["attachments"]] == [], \
        "the released attempt's unlogged preview is not shown under the release message"
    with harness.sessions() as db:
        row = db.get(Ticket, ticket)
        assert row.attempts == 0, "a release gives the attempt back"
        assert row.claim_id is None
        progress = select(TicketProgress).where(TicketProgress.ticket_id == ticket)
        assert db.scalars(progress).all() == [], "progress is wiped"
        history = db.scalars(select(TicketHistory.status).where(TicketHistory.ticket_id == ticket)
                             .order_by(TicketHistory.id)).all()
        assert history[-2:] == ["claimed", "ready"]
    # the same ticket is claimed again at once, by another provider session
    other = harness.provider_client("releasers")
    assert claim(other, claimed["githash"]).data.startswith(f"{ticket},".encode())
    assert other.get(f"/api/pro/tickets/{ticket}/files/results").data == b""


def test_release_without_message(claimed):
    assert release(claimed["provider"], claimed["ticket"]).data == b"ready"
    log = claimed["user"].get(f"/api/tickets/{claimed['ticket']}/log").data.decode()
    assert "Released by provider releasers; back in the queue" in log


def test_released_ticket_is_written_by_the_old_claim_no_more(claimed):
    provider, ticket = claimed["provider"], claimed["ticket"]
    assert release(provider, ticket).data == b"ready"
    again = release(provider, ticket)
    assert again.status_code == 409 and b"no longer claimed" in again.data
    late = provider.post(f"/api/pro/tickets/{ticket}/info", data={"message": "late"})
    assert late.status_code == 409


def test_only_the_claiming_session_may_release(claimed):
    harness, ticket = claimed["harness"], claimed["ticket"]
    same_user_other_session = harness.app.test_client()
    token = harness.token(claimed["provider"].email, reusable=True)
    assert same_user_other_session.post("/api/login", data={"token": token}).status_code == 200
    refused = release(same_user_other_session, ticket)
    assert refused.status_code == 409
    assert b"no longer claimed by this provider session" in refused.data
    stranger = harness.provider_client("releasers")  # a provider of the service, never claimed it
    assert release(stranger, ticket).status_code == 400
    assert release(harness.client(), ticket).status_code == 400
    assert claimed["user"].get(f"/api/tickets/{ticket}/status").data == b"claimed"


@pytest.mark.parametrize("final", ["success", "failed", "deleted"])
def test_terminal_tickets_are_not_released(claimed, final):
    provider, user, ticket = claimed["provider"], claimed["user"], claimed["ticket"]
    if final == "deleted":
        assert user.get(f"/api/tickets/{ticket}/delete").data == b"deleted"
    else:
        assert provider.post(f"/api/pro/tickets/{ticket}/status",
                             data={"status": final}).data == final.encode()
    refused = release(provider, ticket, message="bye")
    assert refused.status_code == 409
    assert f"Cannot release a ticket whose status is {final}".encode() in refused.data
    assert user.get(f"/api/tickets/{ticket}/status").data == final.encode()


def test_timed_out_ticket_is_not_released(make_harness):
    harness = make_harness(claim_lease=600, max_attempts=1)
    githash = harness.service(provider="slowpokes")
    provider = harness.provider_client("slowpokes")
    user = harness.client()
    ticket = harness.submit(user, githash)
    claim(provider, githash)
    with harness.sessions() as db:   # the lease aged in the database: no sleeping
        db.get(Ticket, ticket).last_activity = utcnow() - timedelta(hours=1)
        db.commit()
    refused = release(provider, ticket)
    assert refused.status_code == 409 and b"status is timeout" in refused.data
    assert user.get(f"/api/tickets/{ticket}/status").data == b"timeout"


def test_too_long_message_is_refused(claimed):
    refused = release(claimed["provider"], claimed["ticket"], message="x" * 1001)
    assert refused.status_code == 400 and b"at most 1000 characters" in refused.data
    assert claimed["user"].get(f"/api/tickets/{claimed['ticket']}/status").data == b"claimed"


def test_a_waiting_claim_gets_the_released_ticket(claimed):
    harness, ticket = claimed["harness"], claimed["ticket"]
    waiter_client = harness.provider_client("releasers")
    result = {}
    waiter = threading.Thread(
        target=lambda: result.update(response=claim(waiter_client, claimed["githash"], wait="20")))
    waiter.start()
    assert release(claimed["provider"], ticket).data == b"ready"
    waiter.join(25)
    assert result["response"].data.startswith(f"{ticket},".encode())
