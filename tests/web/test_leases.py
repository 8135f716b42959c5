"""Claim leases (expiry, attempts, fencing of stale claims) and waiting claims (`wait=`)."""
import io
import threading
import time
from datetime import timedelta

from dss_server.models import Ticket, TicketAttachment
from dss_server.services import leases
from web_support import upload

# Time passing is simulated by moving the claim's last activity back (no sleeps, so a slow
# request on a busy machine cannot expire a lease the test expects to be alive).
LEASE = 60


def claim(client, githash, **extra):
    return client.post("/api/pro/services/claims",
                       data={"services": githash, "provider": client.provider, "code": "c",
                             **extra})


def age_claim(harness, ticket, seconds):
    with harness.sessions() as db:
        db.get(Ticket, ticket).last_activity -= timedelta(seconds=seconds)
        db.commit()


def test_expired_lease_requeues_then_times_out_and_fences_stale_writes(make_harness):
    harness = make_harness(claim_lease=LEASE, max_attempts=2)
    githash = harness.service(provider="leasers")
    first, second = harness.provider_client("leasers"), harness.provider_client("leasers")
    user = harness.client()
    ticket = harness.submit(user, githash)
    assert claim(first, githash).data.startswith(f"{ticket},".encode())
    age_claim(harness, ticket, LEASE + 1)
    # the next claim sweeps the overdue lease: back to ready, and claimed again at once
    assert claim(second, githash).data.startswith(f"{ticket},".encode())
    stale = first.post(f"/api/pro/tickets/{ticket}/info", data={"message": "late"})
    assert stale.status_code == 409 and b"no longer claimed" in stale.data
    stale_status = first.post(f"/api/pro/tickets/{ticket}/status", data={"status": "success"})
    assert stale_status.status_code == 409
    assert second.post(f"/api/pro/tickets/{ticket}/info", data={"message": "mine"}).status_code == 200
    age_claim(harness, ticket, LEASE + 1)
    # attempts used up: the late write itself finds the lease expired, the ticket times out
    late = second.post(f"/api/pro/tickets/{ticket}/info", data={"message": "too late"})
    assert late.status_code == 409
    assert user.get(f"/api/tickets/{ticket}/status").data == b"timeout"
    log = user.get(f"/api/tickets/{ticket}/log").data.decode()
    assert "claim expired, ticket returned to the queue (attempt 1 of 2 used)" in log
    assert "claim expired after 2 attempts; ticket timed out" in log
    assert user.get(f"/api/tickets/{ticket}/detail").json["result"]["progress"] == 1.0
    assert user.get(f"/api/tickets/{ticket}/retry").data == b"ready"
    with harness.sessions() as db:
        assert db.get(Ticket, ticket).attempts == 0, "a retry gets its attempts back"


def test_a_lapsed_attempt_leaves_no_results_progress_or_unlogged_attachments(make_harness):
    """A dispatcher killed after sending its previews but before the message that shows them:
    the next attempt's user must not see the dead attempt's files beside its own."""
    harness = make_harness(claim_lease=LEASE, max_attempts=2)
    githash = harness.service(provider="lapsers")
    provider, user = harness.provider_client("lapsers"), harness.client()
    ticket = harness.submit(user, githash)
    claim(provider, githash)
    shown = upload(provider, f"/api/pro/tickets/{ticket}/attachments", "shown.txt", b"shown",
                   desc="Shown")
    provider.post(f"/api/pro/tickets/{ticket}/info", data={"message": "stage 1 done"})
    unlogged = upload(provider, f"/api/pro/tickets/{ticket}/attachments", "preview.png", b"png",
                      desc="Preview")
    upload(provider, f"/api/pro/tickets/{ticket}/files/results", "half.nii.gz", b"half")
    provider.post(f"/api/pro/tickets/{ticket}/progress",
                  data={"chunk_start": "0", "chunk_end": "1", "progress": "0.7"})
    age_claim(harness, ticket, LEASE + 1)
    assert provider.get(f"/api/pro/tickets/{ticket}/status").data == b"ready"
    detail = user.get(f"/api/tickets/{ticket}/detail").json["result"]
    attachments = [a["id"] for entry in detail["log"] for a in entry["attachments"]]
    assert attachments == [int(shown.data)], "the message's attachment stays, the orphan goes"
    assert detail["log"][-1]["message"].startswith("No provider activity")
    assert detail["progress"] == 0
    assert user.get(f"/api/tickets/{ticket}/files/results").data == b""
    with harness.sessions() as db:
        assert db.get(TicketAttachment, int(unlogged.data)) is None
    folder = harness.datastore / "attachments" / f"{ticket:08d}"
    assert len(list(folder.iterdir())) == 1, "the orphan's file is removed too"


def test_activity_renews_the_lease(make_harness):
    harness = make_harness(claim_lease=LEASE, max_attempts=1)
    githash = harness.service(provider="busy")
    provider = harness.provider_client("busy")
    ticket = harness.submit(harness.client(), githash)
    claim(provider, githash)
    for step in range(4):  # 4 x 2/3 of a lease: alive only if every post renewed it
        age_claim(harness, ticket, LEASE * 2 / 3)
        progress = {"chunk_start": "0", "chunk_end": "1", "progress": str((step + 1) / 5)}
        assert provider.post(f"/api/pro/tickets/{ticket}/progress", data=progress).status_code == 200
    assert provider.post(f"/api/pro/tickets/{ticket}/status", data={"status": "success"}).data == b"success"


def test_sweep_function_expires_only_overdue_claims(make_harness):
    harness = make_harness(claim_lease=600)
    githash = harness.service(provider="sweep")
    provider = harness.provider_client("sweep")
    ticket = harness.submit(harness.client(), githash)
    claim(provider, githash)
    # The database is shared with other tests, so look at this ticket, not at the counts alone.
    with harness.sessions() as db:
        datastore = harness.datastore
        leases.sweep(db, leases.ClaimPolicy(600, 2, datastore))
        db.commit()
        assert db.get(Ticket, ticket).status == "claimed", "a fresh claim is not overdue"
        # a zero lease makes every claim overdue
        assert leases.sweep(db, leases.ClaimPolicy(0, 2, datastore)) >= 1
        db.commit()
        assert db.get(Ticket, ticket).status == "ready"


def test_waiting_claim_returns_when_a_ticket_becomes_ready(harness):
    githash = harness.service(provider="waiters")
    provider = harness.provider_client("waiters")
    user = harness.client()
    result = {}

    def wait_for_ticket():
        started = time.monotonic()
        result["response"] = claim(provider, githash, wait="20")
        result["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=wait_for_ticket)
    waiter.start()
    time.sleep(0.3)
    ticket = harness.submit(user, githash)
    waiter.join(25)
    assert result["response"].data == f"{ticket},{githash},claimed\r\n".encode()
    assert result["seconds"] < 10, "woken by the ready transition, long before wait ran out"


def test_waiting_claims_hold_no_database_connection(harness):
    """Dispatchers wait with `wait=` all day: between its attempts a waiting claim gives its
    connections back (autocommit pool and session pool alike)."""
    githash = harness.service(provider="idlers")
    providers = [harness.provider_client("idlers") for _ in range(3)]
    pools = [harness.app.extensions[name].pool for name in ("dss_engine", "dss_autocommit")]
    waiters = [threading.Thread(target=claim, args=(provider, githash), kwargs={"wait": "1.5"})
               for provider in providers]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.7)
    held = [pool.checkedout() for pool in pools]
    for waiter in waiters:
        waiter.join(10)
    assert held == [0, 0]


def test_waiting_claim_without_tickets_answers_none(harness):
    githash = harness.service(provider="patient")
    provider = harness.provider_client("patient")
    assert claim(provider, githash, wait="0.3").data == b"None"
    bad = claim(provider, githash, wait="soon")
    assert bad.status_code == 400 and b"wait" in bad.data


class SlowBody(io.BytesIO):
    """A request body that arrives in pieces, `pause` seconds apart (a slow link)."""

    def __init__(self, content: bytes, pieces: int, pause: float):
        super().__init__(content)
        self.step, self.pause = -(-len(content) // pieces), pause

    def read(self, size: int | None = -1) -> bytes:
        time.sleep(self.pause)
        return super().read(self.step if size is None or size < 0 else min(size, self.step))

    def readinto(self, buffer) -> int:
        piece = self.read(len(buffer))
        buffer[:len(piece)] = piece
        return len(piece)


def test_a_long_result_upload_renews_the_claim_while_it_arrives(make_harness):
    # Real time here: the upload takes twice the lease; the claim is renewed every quarter lease.
    harness = make_harness(claim_lease=2, max_attempts=1)
    githash = harness.service(provider="slowlink")
    provider = harness.provider_client("slowlink")
    ticket = harness.submit(harness.client(), githash)
    claim(provider, githash)
    boundary = "slowboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"myfile\"; "
            f"filename=\"result.nii.gz\"\r\n\r\n").encode() + b"x" * 80_000 + \
        f"\r\n--{boundary}--\r\n".encode()
    response = provider.post(f"/api/pro/tickets/{ticket}/files/results",
                              input_stream=SlowBody(body, pieces=8, pause=0.5),
                              content_type=f"multipart/form-data; boundary={boundary}")
    assert (response.status_code, response.data) == (200, b"success")
    assert provider.get(f"/api/pro/tickets/{ticket}/status").data == b"claimed"
    assert provider.get(f"/api/pro/tickets/{ticket}/files/results").data == b"0,result.nii.gz\r\n"
