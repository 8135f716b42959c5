"""UploadFile, the datastore's target of one streamed upload part: space reserved up front."""
import hashlib
import os

import pytest
from sqlalchemy.exc import IntegrityError

from dss_server.services import files
from dss_server.services.files import PREALLOCATE_MIN_BYTES, UploadFile

MIB = 1 << 20


def allocated_bytes(path) -> int:
    return os.stat(path).st_blocks * 512


def test_a_large_upload_reserves_its_length_and_keeps_only_what_was_written(tmp_path):
    content = os.urandom(MIB) * 17 + b"tail"
    upload = UploadFile(tmp_path / "tmp", max_bytes=1 << 30, expected_bytes=64 * MIB)
    assert allocated_bytes(upload.path) >= 64 * MIB
    for offset in range(0, len(content), MIB):
        upload.write(content[offset:offset + MIB])
    stored = tmp_path / "stored.bin"
    upload.move_to(stored)
    assert stored.read_bytes() == content
    assert upload.sha256 == hashlib.sha256(content).hexdigest()
    assert allocated_bytes(stored) < 18 * MIB  # the reserve past the content is given back


def test_small_uploads_and_unknown_lengths_reserve_nothing(tmp_path):
    for expected in (None, PREALLOCATE_MIN_BYTES - 1):
        upload = UploadFile(tmp_path, max_bytes=1 << 30, expected_bytes=expected)
        assert allocated_bytes(upload.path) == 0
        upload.discard()
        assert not upload.path.exists()


def test_the_reserve_never_exceeds_the_upload_cap(tmp_path):
    upload = UploadFile(tmp_path, max_bytes=20 * MIB, expected_bytes=1 << 40)
    assert 20 * MIB <= allocated_bytes(upload.path) < 21 * MIB
    upload.discard()


def test_a_failed_database_write_leaves_the_datastore_as_it_was(harness):
    """The row is written before the file is moved: an error in between changes nothing."""
    upload = UploadFile(files.upload_dir(harness.datastore), max_bytes=MIB)
    upload.write(b"new content")
    with harness.sessions() as db, pytest.raises(IntegrityError):
        files.store(db, harness.datastore, 999_999_999, "input", upload, "scan.nii")  # no ticket
    assert not files.ticket_dir(harness.datastore, 999_999_999, "input").exists()
    upload.discard()
