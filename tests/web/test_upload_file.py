"""UploadFile, the datastore's target of one streamed upload part: space reserved as data arrives."""
import hashlib
import os

import pytest
from sqlalchemy.exc import IntegrityError

from dss_server.error_statuses import status_of
from dss_server.errors import NoSpace
from dss_server.services import files
from dss_server.services.bootstrap import remove_stale_uploads
from dss_server.services.files import PREALLOCATE_MIN_BYTES, RESERVE_STEP_BYTES, UploadFile

MIB = 1 << 20


def allocated_bytes(path) -> int:
    return os.stat(path).st_blocks * 512


def test_a_large_upload_reserves_ahead_of_its_writes_and_keeps_only_what_was_written(tmp_path):
    content = os.urandom(MIB) * 17 + b"tail"
    upload = UploadFile(tmp_path / "tmp", max_bytes=1 << 40, expected_bytes=1 << 30)
    assert allocated_bytes(upload.path) == 0, "nothing reserved before the body arrives"
    upload.write(content[:MIB])
    assert MIB + RESERVE_STEP_BYTES <= allocated_bytes(upload.path) < (1 << 30) // 4
    for offset in range(MIB, len(content), MIB):
        upload.write(content[offset:offset + MIB])
    stored = tmp_path / "stored.bin"
    upload.move_to(stored)
    assert stored.read_bytes() == content
    assert upload.sha256 == hashlib.sha256(content).hexdigest()
    assert allocated_bytes(stored) < 18 * MIB  # the reserve past the content is given back


def test_a_stored_upload_reaches_the_disk_before_its_rename_and_the_rename_after(tmp_path,
                                                                                  monkeypatch):
    """A power loss is what cannot happen here; what can be checked is the order the kernel is
    asked for: the file's data synced, then the rename, then the folder holding it synced."""
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(("fsync", os.readlink(
        f"/proc/self/fd/{fd}"))) or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: calls.append(("replace", str(b)))
                        or real_replace(a, b))
    upload = UploadFile(tmp_path / "tmp", max_bytes=1 << 30)
    upload.write(b"voxels")
    temp = str(upload.path)
    stored = tmp_path / "tickets" / "input" / "ct.nii"
    upload.move_to(stored)
    assert calls == [("fsync", temp), ("replace", str(stored)), ("fsync", str(stored.parent))]
    assert stored.read_bytes() == b"voxels"


def test_small_uploads_and_unknown_lengths_reserve_nothing(tmp_path):
    for expected in (None, PREALLOCATE_MIN_BYTES - 1):
        upload = UploadFile(tmp_path, max_bytes=1 << 30, expected_bytes=expected)
        upload.write(b"x")
        assert allocated_bytes(upload.path) <= 64 * 1024
        upload.discard()
        assert not upload.path.exists()


def test_the_reserve_never_exceeds_the_upload_cap(tmp_path):
    upload = UploadFile(tmp_path, max_bytes=20 * MIB, expected_bytes=1 << 40)
    upload.write(b"x")
    assert 20 * MIB <= allocated_bytes(upload.path) < 21 * MIB
    upload.discard()


def test_a_length_the_datastore_cannot_hold_is_507_before_the_body(tmp_path):
    status = os.statvfs(tmp_path)
    too_big = status.f_bavail * status.f_frsize + (1 << 30)
    with pytest.raises(NoSpace) as refused:
        UploadFile(tmp_path / "tmp", max_bytes=1 << 60, expected_bytes=too_big)
    assert status_of(refused.value) == 507 and f"an upload of {too_big} bytes" in refused.value.message
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_sweep_removes_unlocked_uploads_at_once_and_keeps_live_ones(tmp_path):
    """A killed process's temp file is no longer locked; a live upload's is."""
    live = UploadFile(tmp_path / "tmp", max_bytes=MIB)
    live.write(b"arriving")
    orphan = tmp_path / "tmp" / "upload-orphan"
    orphan.write_bytes(b"x")  # fresh, but nobody holds it: its writer was killed
    assert remove_stale_uploads(tmp_path) == 1
    assert not orphan.exists() and live.path.exists()
    live.move_to(tmp_path / "stored")
    assert (tmp_path / "stored").read_bytes() == b"arriving"


def test_a_failed_database_write_leaves_the_datastore_as_it_was(harness):
    """The row is written before the file is moved: an error in between changes nothing."""
    upload = UploadFile(files.upload_dir(harness.datastore), max_bytes=MIB)
    upload.write(b"new content")
    with harness.sessions() as db, pytest.raises(IntegrityError):
        files.store(db, harness.datastore, 999_999_999, "input", upload, "scan.nii")  # no ticket
    assert not files.ticket_dir(harness.datastore, 999_999_999, "input").exists()
    upload.discard()
