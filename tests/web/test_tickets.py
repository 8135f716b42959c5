"""The consumer side of tickets, with the exact bodies of spec c.2-c.3."""
import hashlib
import json

from werkzeug.test import EnvironBuilder

from web_support import upload


def test_services_csv_json_detail(harness):
    githash = harness.service(name="MRI-NeckCut", provider="lab",
                              descriptor={"name": "MRI-NeckCut", "version": "1.0.0",
                                          "shortdesc": "DSS example, with a comma", "url": "x"})
    client = harness.client()
    body = client.get("/api/services").data
    assert f'MRI-NeckCut,{githash},1.0.0,"DSS example, with a comma"\r\n'.encode() in body
    assert client.get("/api/services").headers["Content-Type"].startswith("text/csv")
    result = client.get("/api/services?format=json").json["result"]
    assert {"name": "MRI-NeckCut", "githash": githash, "version": "1.0.0",
            "shortdesc": "DSS example, with a comma"} in result
    detail = client.get(f"/api/services/{githash}/detail")
    assert detail.headers["Content-Type"] == "application/json"
    assert json.loads(detail.data) == {"name": "MRI-NeckCut", "version": "1.0.0",
                                       "shortdesc": "DSS example, with a comma", "url": "x"}
    missing = client.get(f"/api/services/{'0' * 40}/detail")
    assert (missing.status_code, missing.data) == (400, f"Service {'0' * 40} is not available".encode())


def test_create_ticket_by_githash_or_name(harness):
    old = harness.service(name="Seg", version="1.9.0")
    new = harness.service(name="Seg", version="1.10.0")
    client = harness.client()
    first = client.post("/api/tickets", data={"githash": old})
    assert first.status_code == 200 and first.data.isdigit()
    second = client.post("/api/tickets", data={"name": "Seg"})
    assert client.get("/api/tickets").data == (
        f"{int(first.data)},Seg,init\r\n{int(second.data)},Seg,init\r\n").encode()
    with harness.sessions() as db:
        from dss_server.models import Ticket
        assert db.get(Ticket, int(second.data)).service_githash == new


def test_create_ticket_errors(harness):
    client = harness.client()
    cases = [({"name": "Nope"}, b"Unable to find service named Nope"),
             ({}, b"Unable to find service: neither name nor githash specified"),
             ({"githash": "a" * 40}, f"Service {'a' * 40} is not available".encode())]
    for form, body in cases:
        response = client.post("/api/tickets", data=form)
        assert (response.status_code, response.data) == (400, body)


def test_ticket_quota_of_the_tier(harness):
    githash = harness.service()
    client = harness.client(tier="guest")
    for _ in range(10):
        assert client.post("/api/tickets", data={"githash": githash}).status_code == 200
    response = client.post("/api/tickets", data={"githash": githash})
    assert (response.status_code, response.data) == (
        400, b"Maximum allowed number of open tickets (10) exceeded.")


def test_upload_list_download_ready(harness):
    githash = harness.service()
    client = harness.client()
    ticket = int(client.post("/api/tickets", data={"githash": githash}).data)
    assert upload(client, f"/api/tickets/{ticket}/files/input", f"ticket_{ticket:08d}.itksnap",
                  b"<registry/>").data == b"success"
    assert upload(client, f"/api/tickets/{ticket}/files/input", "layer_000_abc.nii.gz",
                  b"\x1f\x8b" + bytes(range(256)) * 10).data == b"success"
    listing = client.get(f"/api/tickets/{ticket}/files/input")
    assert listing.headers["Content-Type"].startswith("text/csv")
    # the workspace is listed last (the old ASHS daemon takes the last line)
    assert listing.data == f"0,layer_000_abc.nii.gz\r\n1,ticket_{ticket:08d}.itksnap\r\n".encode()
    download = client.get(f"/api/tickets/{ticket}/files/input/0")
    assert download.data == b"\x1f\x8b" + bytes(range(256)) * 10
    assert download.headers["Content-Length"] == str(2 + 2560)
    assert download.headers["Content-Disposition"] == 'attachment; filename="layer_000_abc.nii.gz"'
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert client.get(f"/api/tickets/{ticket}/files/results").data == b""
    assert client.post(f"/api/tickets/{ticket}/status", data={"status": "ready"}).data == b"ready"
    assert client.get(f"/api/tickets/{ticket}/status").data == b"ready"
    late = upload(client, f"/api/tickets/{ticket}/files/input", "late.txt", b"x")
    assert late.status_code == 409


def test_overwrite_keeps_the_index_and_stores_sha256(harness):
    client = harness.client()
    ticket = int(client.post("/api/tickets", data={"githash": harness.service()}).data)
    url = f"/api/tickets/{ticket}/files/input"
    upload(client, url, "a.nii", b"one")
    upload(client, url, "b.nii", b"two")
    upload(client, url, "a.nii", b"three")
    assert client.get(url).data == b"0,a.nii\r\n1,b.nii\r\n"
    assert client.get(url + "/0").data == b"three"
    import hashlib

    from sqlalchemy import select

    from dss_server.models import TicketFile
    with harness.sessions() as db:
        row = db.scalar(select(TicketFile).where(TicketFile.ticket_id == ticket,
                                                 TicketFile.name == "a.nii"))
        assert (row.size, row.sha256) == (5, hashlib.sha256(b"three").hexdigest())
    assert (harness.datastore / "tickets" / f"{ticket:08d}" / "input" / "a.nii").read_bytes() == b"three"


def test_status_ready_only_accepts_ready(harness):
    client = harness.client()
    ticket = int(client.post("/api/tickets", data={"githash": harness.service()}).data)
    response = client.post(f"/api/tickets/{ticket}/status", data={"status": "success"})
    assert (response.status_code, response.data) == (
        400, b"Changing ticket status to success is not supported")


def test_progress_queuepos_detail_log_of_a_ready_ticket(harness):
    githash = harness.service()
    client = harness.client()
    first = harness.submit(client, githash)
    second = harness.submit(client, githash)
    assert client.get(f"/api/tickets/{second}/progress").data == b"0.0"
    assert client.get(f"/api/tickets/{second}/queuepos").data == b"2"
    log = client.get(f"/api/tickets/{second}/log").data.decode()
    rows = log.split("\r\n")
    assert rows[-1] == "" and len(rows) == 2
    log_id, atime, category, count, message = rows[0].split(",")
    assert (category, count, message) == ("info", "0", "Ticket received and queued for processing")
    assert len(atime) in (19, 26) and atime[4] == "-" and atime[10] == " "
    detail = client.get(f"/api/tickets/{second}/detail").json["result"]
    assert detail["status"] == "ready" and detail["progress"] == 0.0
    assert isinstance(detail["queue_position"], int) and detail["queue_position"] >= 2
    assert detail["log"] == [{"id": int(log_id), "atime": atime, "category": "info",
                              "message": "Ticket received and queued for processing",
                              "attachments": []}]
    assert client.get(f"/api/tickets/{second}/detail?since={log_id}").json["result"]["log"] == []
    assert client.get(f"/api/tickets/{second}/log?since={log_id}").data == b""
    assert client.get(f"/api/tickets/{second}/log?since=abc").data == b""
    as_json = client.get(f"/api/tickets/{second}/log?format=json").json["result"]
    assert as_json == [{"id": int(log_id), "atime": atime, "category": "info", "attachments": 0,
                        "message": "Ticket received and queued for processing"}]
    assert first < second


def test_delete_then_listing_hides_it(harness):
    client = harness.client()
    ticket = harness.submit(client, harness.service())
    assert client.get(f"/api/tickets/{ticket}/delete").data == b"deleted"
    assert client.get("/api/tickets").data == b""
    assert client.get(f"/api/tickets/{ticket}/status").data == b"deleted"
    assert not (harness.datastore / "tickets" / f"{ticket:08d}").exists(), "no empty folder left"
    again = client.get(f"/api/tickets/{ticket}/delete")  # spec (b): no status guard
    assert (again.status_code, again.data) == (200, b"deleted")
    assert harness.client().get(f"/api/tickets/{ticket}/delete").status_code == 400  # not theirs


def test_a_deletion_that_does_not_commit_keeps_the_files(harness):
    """The database forgets files in a transaction; the disk follows only once it commits (a
    database lost mid-request must not leave a live ticket without its input)."""
    from dss_server import lifecycle
    from dss_server.models import Ticket
    from dss_server.services import tickets
    client = harness.client()
    ticket = harness.submit(client, harness.service())
    folder = harness.datastore / "tickets" / f"{ticket:08d}" / "input"
    with harness.sessions() as db:
        tickets.delete_ticket(db, db.get(Ticket, ticket), {lifecycle.OWNER}, harness.datastore)
        db.flush()
        assert folder.is_dir(), "nothing is removed before the commit"
        db.rollback()
    assert client.get(f"/api/tickets/{ticket}/files/input/0").data == b"<registry/>"
    with harness.sessions() as db:
        tickets.delete_ticket(db, db.get(Ticket, ticket), {lifecycle.OWNER}, harness.datastore)
        db.commit()
    assert not folder.parent.exists()


def test_foreign_and_unknown_tickets_are_not_found_for_the_user(harness):
    owner, other = harness.client(), harness.client()
    ticket = harness.submit(owner, harness.service())
    for url in (f"/api/tickets/{ticket}/status", f"/api/tickets/{ticket}/detail",
                f"/api/tickets/{ticket}/files/input", f"/api/tickets/{ticket}/files/input/0",
                f"/api/tickets/{ticket}/delete", f"/api/tickets/{ticket}/log",
                "/api/tickets/999999/status"):
        response = other.get(url)
        wanted = ticket if "999999" not in url else 999999
        assert (response.status_code, response.data) == (
            400, f"Ticket {wanted} not found for user {other.user_id}".encode()), url
    admin = harness.client(admin=True)
    assert admin.get(f"/api/tickets/{ticket}/status").data == b"ready"


def test_service_stats(harness):
    githash = harness.service()
    client = harness.client()
    harness.submit(client, githash)
    stats = client.get(f"/api/services/{githash}/stats?format=json").json["result"]
    assert stats[0]["n_success"] == 0 and stats[0]["n_failed"] == 0
    assert stats[0]["queue_length"] == 1 and list(stats[0]) == [
        "n_success", "n_failed", "last_heard_from", "queue_length"]
    csv_row = client.get(f"/api/services/{githash}/stats").data
    assert csv_row.startswith(b"0,0,") and csv_row.endswith(b",1\r\n")


def test_downloads_go_to_the_servers_file_wrapper_and_big_uploads_hash_right(harness):
    """The file object reaches the WSGI server's wsgi.file_wrapper (gunicorn sends it with
    sendfile); a multi-MiB upload, hashed on a helper thread, has the right sha256."""
    user = harness.client()
    ticket = int(user.post("/api/tickets", data={"githash": harness.service()}).data)
    content = bytes(range(256)) * (20 * 4096 + 7)  # 20 MiB (space reserved), not a multiple of a chunk
    assert upload(user, f"/api/tickets/{ticket}/files/input", "big.bin", content).data == b"success"

    class FileWrapper:
        def __init__(self, filelike, block_size=8192):
            self.filelike, self.block_size = filelike, block_size

        def __iter__(self):
            while block := self.filelike.read(self.block_size):
                yield block

        def close(self):
            self.filelike.close()

    cookie = user.get_cookie("webpy_session_id").value
    environ = EnvironBuilder(path=f"/api/tickets/{ticket}/files/input/0",
                             headers={"Cookie": f"webpy_session_id={cookie}"}).get_environ()
    environ["wsgi.file_wrapper"] = FileWrapper
    wrapper = harness.app(environ, lambda status, headers: None)
    assert isinstance(wrapper, FileWrapper) and hasattr(wrapper.filelike, "fileno")
    assert b"".join(wrapper) == content
    wrapper.close()
    with harness.sessions() as db:
        from dss_server.models import TicketFile
        stored = db.query(TicketFile).filter_by(ticket_id=ticket).one()
        assert stored.sha256 == hashlib.sha256(content).hexdigest()


def test_listing_tickets_does_not_load_the_user(harness):
    """ITK-SNAP lists the tickets every 4 s while a ticket runs: the identity's user id is all
    the listing needs, so the user's row is not loaded as an ORM entity (its full column list)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    githash = harness.service(name="Seg")
    client = harness.client()
    ticket = int(client.post("/api/tickets", data={"githash": githash}).data)
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        listing = client.get("/api/tickets")
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert listing.data == f"{ticket},Seg,init\r\n".encode()
    assert statements and not [s for s in statements if "users.dispname" in s]
