"""The provider API (spec c.4, c.5, h.1) with exact bodies."""
import re
import uuid

import pytest
from sqlalchemy import select

from dss_server import create_app
from web_support import Harness, explain_claim, make_config, upload


def claim(client, githashes, provider=None, code="01", **extra):
    """A claim naming `provider`, else the provider the client is a member of."""
    return client.post("/api/pro/services/claims",
                       data={"services": ",".join(githashes),
                             "provider": provider or client.provider, "code": code, **extra})


def test_provider_services_listing(harness):
    githash = harness.service(name="Lungs", version="0.1.0", provider="lab1")
    provider = harness.provider_client("lab1")
    assert provider.get("/api/pro/services").data == f"Lungs,0.1.0,{githash},lab1\r\n".encode()
    assert harness.client().get("/api/pro/services").data == b""


def test_claim_exact_body_then_none(harness):
    githash = harness.service(provider="lab2")
    provider = harness.provider_client("lab2")
    user = harness.client()
    assert claim(provider, [githash]).data == b"None"
    ticket = harness.submit(user, githash)
    response = claim(provider, [githash])
    assert (response.status_code, response.data) == (200, f"{ticket},{githash},claimed\r\n".encode())
    assert claim(provider, [githash]).data == b"None"
    assert user.get(f"/api/tickets/{ticket}/status").data == b"claimed"
    log = user.get(f"/api/tickets/{ticket}/log").data.decode()
    assert log.endswith(",info,0,Ticket claimed by provider lab2 instance 01\r\n")


def test_claim_is_fifo_across_services_and_json(harness):
    first_service = harness.service(provider="lab3")
    second_service = harness.service(provider="lab3")
    provider = harness.provider_client("lab3")
    user = harness.client()
    first = harness.submit(user, second_service)
    second = harness.submit(user, first_service)
    response = claim(provider, [first_service, second_service], format="json")
    assert response.json == {"result": [{"id": first, "service_githash": second_service,
                                         "status": "claimed"}]}
    assert claim(provider, [first_service, second_service]).data.startswith(f"{second},".encode())


def test_claim_needs_services_provider_and_rights(harness):
    githash = harness.service(provider="lab4")
    provider = harness.provider_client("lab4")
    stranger = harness.client()
    missing = provider.post("/api/pro/services/claims", data={"provider": "p"})
    assert (missing.status_code, missing.data) == (400, b"Missing 'services' parameter")
    no_provider = provider.post("/api/pro/services/claims", data={"services": githash})
    assert (no_provider.status_code, no_provider.data) == (400, b"Missing 'provider' parameter")
    refused = claim(stranger, [githash], provider="lab4")
    assert (refused.status_code, refused.data) == (
        401, f"You are not a provider for service {githash} ".encode())


def test_a_claim_must_name_a_current_provider_of_the_account(harness):
    """`provider` goes into the claim's records and the user's log: a name the account is not a
    member of, or a retired provider's, is 401 naming it, and nothing is claimed."""
    from dss_server.models import Provider, ProviderAccess
    githash = harness.service(provider="memberlab")
    provider = harness.provider_client("memberlab")
    harness.service(provider="otherlab")  # exists, but the account is not a member
    harness.service(provider="oldlab")
    with harness.sessions() as db:
        db.add(ProviderAccess(user_id=provider.user_id, provider="oldlab"))
        db.get(Provider, "oldlab").current = False
        db.commit()
    owner = harness.client()
    ticket = harness.submit(owner, githash)
    refusals = {"otherlab": "You are not a member of provider otherlab",
                "no-such-lab": "You are not a member of provider no-such-lab",
                "oldlab": "Provider oldlab is retired"}
    for name, reason in refusals.items():
        for response in (claim(provider, [githash], provider=name),
                         provider.post(f"/api/pro/services/{githash}/claims",
                                       data={"provider": name})):
            assert (response.status_code, response.data.decode()) == (401, reason)
    assert owner.get(f"/api/tickets/{ticket}/status").data == b"ready"
    assert claim(provider, [githash]).data == f"{ticket},{githash},claimed\r\n".encode()


def test_single_service_claim_answers_id_or_minus_one(harness):
    githash = harness.service(provider="lab5")
    provider = harness.provider_client("lab5")
    url = f"/api/pro/services/{githash}/claims"
    assert provider.post(url, data={"provider": "lab5", "code": "c"}).data == b"-1"
    ticket = harness.submit(harness.client(), githash)
    assert provider.post(url, data={"provider": "lab5", "code": "c"}).data == str(ticket).encode()
    assert provider.get(url).status_code == 405


def test_available_lists_ready_counts_in_claim_order(harness):
    one = harness.service(name="One", provider="lab6")
    two = harness.service(name="Two", provider="lab6")
    provider = harness.provider_client("lab6")
    url = "/api/pro/services/available"
    assert provider.post(url, data={"services": f"{one},{two}"}).data == b""
    assert provider.post(url, data={"services": f"{one},{two}", "format": "json"}).json == {"result": []}
    user = harness.client()
    harness.submit(user, two)
    harness.submit(user, one)
    harness.submit(user, two)
    assert provider.post(url, data={"services": f"{one},{two}"}).data == (
        f"{two},Two,2\r\n{one},One,1\r\n").encode()
    assert provider.get(url).status_code == 405
    assert provider.post(url, data={}).data == b"Missing 'services' parameter"


def test_full_provider_round_trip(harness):
    githash = harness.service(provider="lab7")
    provider = harness.provider_client("lab7")
    user = harness.client()
    ticket = harness.submit(user, githash, files=[("ws.itksnap", b"<ws/>"), ("img.nii.gz", b"IMG")])
    claim(provider, [githash])
    assert provider.get(f"/api/pro/tickets/{ticket}/files/input").data == b"0,img.nii.gz\r\n1,ws.itksnap\r\n"
    download = provider.get(f"/api/pro/tickets/{ticket}/files/input/0")
    assert (download.data, download.headers["Content-Length"]) == (b"IMG", "3")
    progress = {"chunk_start": "0.000000", "chunk_end": "0.500000", "progress": "0.400000"}
    assert provider.post(f"/api/pro/tickets/{ticket}/progress", data=progress).data == b"success"
    assert provider.get(f"/api/pro/tickets/{ticket}/progress").data == b"0.2"
    assert user.get(f"/api/tickets/{ticket}/progress").data == b"0.2"
    assert user.get(f"/api/tickets/{ticket}/detail").json["result"]["progress"] == 0.2
    # repeated chunk start with another end updates (the original crashed)
    again = {"chunk_start": "0", "chunk_end": "1", "progress": "0.5"}
    assert provider.post(f"/api/pro/tickets/{ticket}/progress", data=again).data == b"success"
    assert user.get(f"/api/tickets/{ticket}/progress").data == b"0.5"
    attachment = upload(provider, f"/api/pro/tickets/{ticket}/attachments", "preview.png",
                        b"\x89PNG...", desc="Preview")
    assert re.fullmatch(rb"\d+", attachment.data), attachment.data
    log_id = provider.post(f"/api/pro/tickets/{ticket}/info", data={"message": "Lungs done: 2 found"})
    assert re.fullmatch(rb"\d+", log_id.data)
    log = user.get(f"/api/tickets/{ticket}/log").data.decode().split("\r\n")
    assert log[-2].endswith(",info,1,Lungs done: 2 found")
    links = user.get(f"/api/tickets/logs/{int(log_id.data)}/attachments").data.decode()
    match = re.fullmatch(r"(\d+),Preview,image/png,(http://localhost/blobs/[0-9a-f]{8})\r\n", links)
    assert match and int(match.group(1)) == int(attachment.data)
    blob = harness.app.test_client().get(match.group(2).replace("http://localhost", ""))
    assert (blob.status_code, blob.data, blob.headers["Content-Type"]) == (200, b"\x89PNG...", "image/png")
    detail = user.get(f"/api/tickets/{ticket}/detail").json["result"]
    assert detail["log"][-1]["attachments"] == [{"id": int(attachment.data), "description": "Preview",
                                                 "mime_type": "image/png", "url": match.group(2)}]
    assert upload(provider, f"/api/pro/tickets/{ticket}/files/results", "result.itksnap",
                  b"<res/>").data == b"success"
    assert provider.get(f"/api/pro/tickets/{ticket}/status").data == b"claimed"
    assert provider.post(f"/api/pro/tickets/{ticket}/status", data={"status": "success"}).data == b"success"
    assert user.get(f"/api/tickets/{ticket}/files/results").data == b"0,result.itksnap\r\n"
    assert user.get(f"/api/tickets/{ticket}/files/results/0").data == b"<res/>"
    assert user.get(f"/api/tickets/{ticket}/detail").json["result"]["progress"] == 1.0


def test_log_categories_and_missing_fields(harness):
    githash = harness.service(provider="lab8")
    provider = harness.provider_client("lab8")
    ticket = harness.submit(harness.client(), githash)
    claim(provider, [githash])
    for category in ("info", "warning", "error"):
        assert provider.post(f"/api/pro/tickets/{ticket}/{category}", data={"message": "m"}).status_code == 200
    bad = provider.post(f"/api/pro/tickets/{ticket}/log", data={"message": "m"})
    assert bad.status_code == 400 and b"log" in bad.data
    no_desc = upload(provider, f"/api/pro/tickets/{ticket}/attachments", "a.txt", b"x")
    assert (no_desc.status_code, no_desc.data) == (400, b"Missing 'desc' parameter")
    bad_progress = provider.post(f"/api/pro/tickets/{ticket}/progress", data={"progress": "x"})
    assert bad_progress.status_code == 400


def test_unclaimed_ticket_is_refused_to_providers(harness):
    githash = harness.service(provider="lab9")
    provider = harness.provider_client("lab9")
    ticket = harness.submit(harness.client(), githash)
    response = provider.post(f"/api/pro/tickets/{ticket}/info", data={"message": "m"})
    assert (response.status_code, response.data) == (
        400, f"Ticket {ticket} has not been claimed by user {provider.user_id}".encode())
    assert provider.get(f"/api/pro/tickets/{ticket}/status").data == b"ready"
    stranger = harness.client()
    assert stranger.get(f"/api/pro/tickets/{ticket}/status").status_code == 401


def test_terminal_status_repeat_is_noop_change_is_409(harness):
    githash = harness.service(provider="lab10")
    provider = harness.provider_client("lab10")
    ticket = harness.submit(harness.client(), githash)
    claim(provider, [githash])
    url = f"/api/pro/tickets/{ticket}/status"
    assert provider.post(url, data={"status": "failed"}).data == b"failed"
    assert provider.post(url, data={"status": "failed"}).data == b"failed"
    changed = provider.post(url, data={"status": "success"})
    assert changed.status_code == 409 and b"failed" in changed.data
    wrong = provider.post(url, data={"status": "claimed"})
    assert (wrong.status_code, wrong.data) == (400, b"Cannot set status of ticket to claimed")


@pytest.mark.parametrize("final", ["success", "failed"])
def test_a_finished_ticket_takes_no_more_writes_from_its_provider(harness, final):
    """Logs, files, attachments and progress after the final status are 409 with the reason,
    and change nothing the user sees; the status may be repeated, inputs still read."""
    githash = harness.service(provider="donelab")
    provider, owner = harness.provider_client("donelab"), harness.client()
    ticket = harness.submit(owner, githash)
    claim(provider, [githash])
    base = f"/api/pro/tickets/{ticket}"
    assert upload(provider, f"{base}/files/results", "r.itksnap", b"<r/>").data == b"success"
    assert provider.post(f"{base}/status", data={"status": final}).data == final.encode()
    seen = [owner.get(f"/api/tickets/{ticket}/{what}").data
            for what in ("log", "files/results", "progress")]
    reason = (f"Ticket {ticket} is {final}: its provider can no longer write to it (logs, "
              f"files, attachments and progress are taken only while it is claimed)").encode()
    writes = [
        provider.post(f"{base}/info", data={"message": "late"}),
        provider.post(f"{base}/progress", data={"chunk_start": "0", "chunk_end": "1",
                                                "progress": "0.5"}),
        upload(provider, f"{base}/files/results", "r.itksnap", b"<overwritten/>"),
        upload(provider, f"{base}/files/results", "extra.nii.gz", b"IMG"),
        upload(provider, f"{base}/attachments", "late.png", b"PNG", desc="late"),
    ]
    assert [(w.status_code, w.data) for w in writes] == [(409, reason)] * len(writes)
    assert [owner.get(f"/api/tickets/{ticket}/{what}").data
            for what in ("log", "files/results", "progress")] == seen
    assert owner.get(f"/api/tickets/{ticket}/files/results/0").data == b"<r/>"
    assert provider.post(f"{base}/status", data={"status": final}).data == final.encode()
    assert provider.get(f"{base}/files/input").status_code == 200
    assert provider.get(f"{base}/status").data == final.encode()


def test_blob_not_found(harness):
    client = harness.app.test_client()
    assert (client.get("/blobs/deadbeef").status_code, client.get("/blobs/deadbeef").data) == (
        400, b"Resource deadbeef not found")
    assert client.get("/blobs/../../etc").status_code in (400, 404)


def test_blobs_keep_their_type_in_a_sandbox_and_log_links_are_the_owners(harness):
    githash = harness.service(provider="lab13")
    provider = harness.provider_client("lab13")
    owner = harness.client()
    ticket = harness.submit(owner, githash)
    claim(provider, [githash])
    upload(provider, f"/api/pro/tickets/{ticket}/attachments", "report.html",
           b"<script>fetch('/api/tickets')</script>", desc="Report", mime_type="text/html")
    log_id = int(provider.post(f"/api/pro/tickets/{ticket}/info", data={"message": "m"}).data)
    url = owner.get(f"/api/tickets/logs/{log_id}/attachments").data.decode().split(",")[-1].strip()
    blob = harness.app.test_client().get(url.replace("http://localhost", ""))
    assert (blob.status_code, blob.headers["Content-Type"]) == (200, "text/html")
    assert "Content-Disposition" not in blob.headers
    assert blob.headers["Content-Security-Policy"].startswith("sandbox;")
    for other in (harness.client(), harness.client(admin=True)):  # no admin bypass (spec c.3)
        refused = other.get(f"/api/tickets/logs/{log_id}/attachments")
        assert (refused.status_code, refused.data) == (
            400, f"Log entry {log_id} is not readable by user {other.user_id}".encode())


def test_stats_after_a_success_and_json_ticket_list(harness):
    githash = harness.service(name="Stats", provider="lab11")
    provider = harness.provider_client("lab11")
    user = harness.client()
    ticket = harness.submit(user, githash)
    claim(provider, [githash])
    provider.post(f"/api/pro/tickets/{ticket}/status", data={"status": "success"})
    stats = user.get(f"/api/services/{githash}/stats?format=json").json["result"][0]
    assert list(stats) == ["n_success", "n_failed", "avg_duration", "last_heard_from", "queue_length"]
    assert (stats["n_success"], stats["n_failed"], stats["queue_length"]) == (1, 0, 0)
    assert isinstance(stats["avg_duration"], float) and stats["avg_duration"] >= 0
    assert user.get("/api/tickets?format=json").json == {
        "result": [{"id": ticket, "service": "Stats", "status": "success"}]}
    admin_rows = harness.client(admin=True).get("/api/admin/tickets?format=json").json["result"]
    mine = [row for row in admin_rows if row["id"] == ticket]
    assert mine and mine[0]["email"] == user.email and mine[0]["status"] == "success"
    assert isinstance(mine[0]["duration"], float)


def test_raw_unescaped_form_values_as_itksnap_wt_sends_them(harness):
    githash = harness.service(provider="lab12")
    provider = harness.provider_client("lab12")
    user = harness.client()
    ticket = harness.submit(user, githash)
    claim(provider, [githash])
    raw = b"message=Affine registration: done in /tmp/alfabis_x (2 s)"
    response = provider.post(f"/api/pro/tickets/{ticket}/info", data=raw,
                             content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert user.get(f"/api/tickets/{ticket}/log").data.decode().endswith(
        ",info,0,Affine registration: done in /tmp/alfabis_x (2 s)\r\n")
    progress = b"chunk_start=0.000000&chunk_end=1.000000&progress=0.400000"
    assert provider.post(f"/api/pro/tickets/{ticket}/progress", data=progress,
                         content_type="application/x-www-form-urlencoded").data == b"success"
    assert user.get(f"/api/tickets/{ticket}/progress").data == b"0.4"


def test_cookieless_noauth_provider_like_the_ibm_dispatcher(make_harness):
    from dss_server.models import ProviderAccess
    from dss_server.services import auth
    harness = make_harness(noauth=True)
    githash = harness.service(provider="IBM-LAB")
    with harness.sessions() as db:
        test_user = auth.ensure_user(db, "test@example.com", sysadmin=True, tier="poweruser")
        db.add(ProviderAccess(user_id=test_user.id, provider="IBM-LAB"))
        db.commit()
    anonymous = harness.app.test_client()  # never logs in, never keeps a cookie
    ticket = harness.submit(anonymous, githash)
    assert claim(anonymous, [githash], provider="IBM-LAB").data == \
        f"{ticket},{githash},claimed\r\n".encode()
    assert harness.app.test_client().post(f"/api/pro/tickets/{ticket}/info",
                                          data={"message": "Starting inference"}).status_code == 200
    done = harness.app.test_client().post(f"/api/pro/tickets/{ticket}/status", data={"status": "success"})
    assert done.data == b"success"


def test_claim_of_several_services_needs_every_one_and_takes_nothing_otherwise(harness):
    mine = harness.service(provider="partlab")
    other = harness.service(provider="otherlab")
    provider = harness.provider_client("partlab")
    ticket = harness.submit(harness.client(), mine)
    refused = claim(provider, [mine, other])
    assert (refused.status_code, refused.data) == (
        401, f"You are not a provider for service {other} ".encode())
    assert claim(provider, [mine, mine]).data == f"{ticket},{mine},claimed\r\n".encode()


@pytest.mark.parametrize("bad", ["image/png\r\nSet-Cookie: evil=1", 'image/x"><script>',
                                 "text/plain\n; charset=utf-8", "png", "a/" + "b" * 300])
def test_an_attachment_type_must_be_a_media_type(harness, bad):
    githash = harness.service(provider="mimelab")
    provider, owner = harness.provider_client("mimelab"), harness.client()
    ticket = harness.submit(owner, githash)
    claim(provider, [githash])

    def attach(**fields):
        return upload(provider, f"/api/pro/tickets/{ticket}/attachments", "note.txt", b"note",
                      desc="Note", **fields)
    refused = attach(mime_type=bad)
    assert refused.status_code == 400 and refused.data.startswith(b"Invalid 'mime_type' ")
    assert b"expected a media type such as image/png" in refused.data
    kept = {"text/plain; charset=utf-8": "text/plain; charset=utf-8",
            "image/svg+xml": "image/svg+xml", " image/png ": "image/png",
            "": "text/plain"}  # absent: guessed from the file's name (spec c.5)
    ids = {int(attach(mime_type=sent).data): stored for sent, stored in kept.items()}
    log_id = int(provider.post(f"/api/pro/tickets/{ticket}/info", data={"message": "m"}).data)
    rows = owner.get(f"/api/tickets/logs/{log_id}/attachments").data.decode().split("\r\n")[:-1]
    assert {int(row.split(",")[0]): row.split(",")[2] for row in rows} == ids
    for row in rows:
        blob = harness.app.test_client().get(row.split(",")[-1].replace("http://localhost", ""))
        assert blob.headers["Content-Type"] == ids[int(row.split(",")[0])]


def test_a_type_stored_before_the_check_is_served_as_plain_bytes(harness):
    from dss_server.models import TicketAttachment
    from dss_server.services import files
    ticket = harness.submit(harness.client(), harness.service(provider="oldmimelab"))
    key = uuid.uuid4().hex
    folder = files.attachment_dir(harness.datastore, ticket)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{key}.png").write_bytes(b"png")
    with harness.sessions() as db:
        db.add(TicketAttachment(ticket_id=ticket, mime_type="image/png\r\nSet-Cookie: evil=1",
                                description="old", uuid=key, filename=f"{key}.png"))
        db.commit()
    blob = harness.app.test_client().get(f"/blobs/{key}")
    assert (blob.status_code, blob.data) == (200, b"png")
    assert blob.headers["Content-Type"] == "application/octet-stream"


def test_claim_records_history_claim_row_and_links_orphan_attachments(harness):
    from dss_server.models import ClaimHistory, Ticket, TicketAttachment, TicketHistory, TicketLog, TicketLogAttachment
    githash = harness.service(provider="rowlab")
    provider = harness.provider_client("rowlab")
    ticket = harness.submit(harness.client(), githash)
    with harness.sessions() as db:  # an attachment no log row took (e.g. before a crash)
        attachment = TicketAttachment(ticket_id=ticket, mime_type="text/plain", description="d",
                                      uuid="a" * 32, filename="note.txt")
        db.add(attachment)
        db.commit()
        attachment_id = attachment.id
    claim(provider, [githash], code="07")
    with harness.sessions() as db:
        row = db.get(Ticket, ticket)
        record = db.get(ClaimHistory, row.claim_id)
        assert (row.status, row.attempts, record.ticket_id) == ("claimed", 1, ticket)
        assert (record.provider, record.provider_code, record.puser_id) == (
            "rowlab", "07", harness.user_id(provider.email))
        assert row.claimed_at == row.last_activity == record.atime
        history = db.scalars(select(TicketHistory.status).where(TicketHistory.ticket_id == ticket)
                             .order_by(TicketHistory.id)).all()
        assert history[-1] == "claimed"
        log = db.scalars(select(TicketLog).where(TicketLog.ticket_id == ticket)
                         .order_by(TicketLog.id.desc())).first()
        assert log.message == "Ticket claimed by provider rowlab instance 07"
        links = db.execute(select(TicketLogAttachment.log_id)
                           .where(TicketLogAttachment.attachment_id == attachment_id)).scalars().all()
        assert links == [log.id]


def test_claims_in_embedded_sqlite_mode(tmp_path):
    url = f"sqlite:///{tmp_path / 'embedded.sqlite3'}"
    harness = Harness(create_app(make_config(url, tmp_path)))
    githash = harness.service(provider="litelab")
    provider = harness.provider_client("litelab")
    user = harness.client()
    ticket = harness.submit(user, githash)
    not_member = claim(provider, [githash], provider="otherlab")
    assert (not_member.status_code, not_member.data) == (
        401, b"You are not a member of provider otherlab")
    assert claim(provider, [githash]).data == f"{ticket},{githash},claimed\r\n".encode()
    assert claim(provider, [githash]).data == b"None"
    assert claim(user, [githash], provider="litelab").status_code == 401
    log = user.get(f"/api/tickets/{ticket}/log").data.decode()
    assert log.endswith(",info,0,Ticket claimed by provider litelab instance 01\r\n")


def test_a_claim_reads_one_ready_ticket_per_service_however_long_the_queue(harness):
    """The pick takes the head of each service's run in ix_tickets_ready: with 600 tickets,
    the first 200 already claimed, the claim's plan reads one row per service (before the
    partial index it read and sorted all 400 ready ones, or walked past the claimed ones)."""
    from sqlalchemy import text

    first, second = harness.service(provider="qlab"), harness.service(provider="qlab")
    provider = harness.provider_client("qlab")
    with harness.sessions() as db:
        db.execute(text(
            "INSERT INTO tickets (user_id, service_githash, status, attempts) "
            "SELECT :user_id, CASE WHEN n % 2 = 0 THEN :first ELSE :second END, "
            "CASE WHEN n <= 200 THEN 'claimed' ELSE 'ready' END, 0 "
            "FROM generate_series(1, 600) AS n"),
            {"user_id": provider.user_id, "first": first, "second": second})
        db.commit()
        db.execute(text("ANALYZE tickets"))
        lowest_ready = db.scalar(text("SELECT min(id) FROM tickets WHERE status = 'ready' "
                                      "AND service_githash IN (:first, :second)"),
                                 {"first": first, "second": second})
        # the fair order's plan: test_claim_order.py
        every = explain_claim(db, "fifo", [first, second], "qlab", provider.user_id)
    assert max(node["Actual Rows"] * node["Actual Loops"] for node in every) <= 2
    assert not any(node.get("Rows Removed by Filter") for node in every
                   if node.get("Relation Name") == "tickets")
    taken = claim(provider, [first, second]).data.decode()
    assert taken.startswith(f"{lowest_ready},")
