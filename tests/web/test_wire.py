"""The wire formats of the DSS protocol (spec 0.1, c.0, h.4), produced only by dss_server.wire."""
import inspect
import os
import time
from datetime import datetime

from flask import Flask

from dss_server import errors, wire
from dss_server.error_statuses import status_of
from dss_server.services.bootstrap import STALE_UPLOAD_SECONDS, remove_stale_uploads


def body(response):
    return response.get_data()


def test_csv_has_crlf_no_header_and_csv_quoting():
    app = Flask(__name__)
    with app.app_context():
        response = wire.table(("a", "b", "c"), [(1, 'say "hi", twice', None), (True, 0.5, "x")], False)
    assert body(response) == b'1,"say ""hi"", twice",\r\nTrue,0.5,x\r\n'
    assert response.headers["Content-Type"].startswith("text/csv")


def test_json_table_keeps_numbers_numbers_and_times_text():
    app = Flask(__name__)
    with app.app_context():
        response = wire.table(("id", "atime"), [(17, datetime(2018, 10, 15, 10, 48, 20, 123456))], True)
    assert body(response) == b'{"result": [{"id": 17, "atime": "2018-10-15 10:48:20.123456"}]}'


def test_timestamps_scalars_none():
    assert wire.timestamp(datetime(2018, 10, 15, 10, 48, 20)) == "2018-10-15 10:48:20"
    app = Flask(__name__)
    with app.app_context():
        assert body(wire.text(17)) == b"17"
        assert body(wire.text(0.30000000000000004)) == b"0.30000000000000004"
        assert body(wire.none()) == b"None"
        assert body(wire.logged_in("a@b.org", False)) == b"logged in as a@b.org \n"
        assert body(wire.error(400, "why", True)) == b'{"error": "why"}'


def test_half_made_uploads_are_removed_once_old(tmp_path):
    """An upload's file is made under a hidden name and locked before it gets its own: one
    left under the hidden name (a process killed in between) goes once old, a fresh one stays."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    old, fresh = folder / ".upload-old", folder / ".upload-new"
    old.write_bytes(b"")
    fresh.write_bytes(b"")
    os.utime(old, (time.time() - STALE_UPLOAD_SECONDS - 60,) * 2)
    assert remove_stale_uploads(tmp_path) == 1
    assert not old.exists() and fresh.exists()


def test_every_refusal_has_a_wire_status_and_not_found_keeps_the_originals_400():
    refusals = [cls for _, cls in inspect.getmembers(errors, inspect.isclass)
                if issubclass(cls, errors.DSSError) and cls is not errors.DSSError]
    assert all(400 <= status_of(cls("reason")) < 600 for cls in refusals)
    assert status_of(errors.TicketNotFound("Ticket 7 not found")) == 400
    assert status_of(errors.NotFound("not found")) == 404
    assert status_of(errors.NotAdmin()) == 401 and status_of(errors.CrossSiteRefused("x")) == 403
