"""Ticket files and attachments in the datastore (spec a.3, e.3): streamed, hashed, sanitised.

Uploads are written by werkzeug's multipart parser straight into an `UploadFile` in
<datastore>/tmp (hashing and counting as they arrive), then renamed into place atomically.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import mimetypes
import os
import re
import shutil
import tempfile
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Callable

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session as DB
from werkzeug.exceptions import RequestEntityTooLarge

from ..db import after_commit
from ..errors import Invalid, NoSpace, NotFound, ResourceNotFound
from ..models import FILE_AREAS, TicketAttachment, TicketFile, TicketLogAttachment, utcnow

# An attachment's type goes out as the blob's Content-Type: type/subtype of RFC 6838
# restricted names, then optional `; name=value` parameters with token values (no quoted
# strings), so nothing in it can end the header or turn into markup where it is shown.
_RESTRICTED_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
MIME_TYPE = re.compile(rf"{_RESTRICTED_NAME}/{_RESTRICTED_NAME}"
                       rf"([ \t]*;[ \t]*{_RESTRICTED_NAME}=[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")
MAX_MIME_TYPE_LENGTH = 255
MAX_NAME_LENGTH = 255  # bytes of UTF-8, as file systems count
MAX_ATTACHMENT_EXTENSION = 64  # stored as <uuid><extension>; a longer extension is dropped
BACKGROUND_HASH_BYTES = 256 * 1024  # smaller writes are hashed in place (a thread hop costs more)
PREALLOCATE_MIN_BYTES = 16 * 1024 * 1024  # smaller uploads reserve nothing
RESERVE_STEP_BYTES = 64 * 1024 * 1024  # reserved ahead of the writes


def _libc_fallocate():
    try:
        fallocate = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):  # not Linux
        return None
    fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    return fallocate


_FALLOCATE = _libc_fallocate()


def preallocate(fd: int, offset: int, length: int) -> bool:
    """Reserve `length` bytes at `offset` of a file being written (Linux fallocate(2)).

    On ext4 and XFS, writing into reserved blocks runs several times faster than growing the
    file block by block (1 GB of 1 MiB writes: about 6.5 against 0.6-4.9 GB/s here). Not glibc's
    posix_fallocate: where the filesystem cannot reserve (older NFS), that one writes zeros over
    the whole size first. Returns whether space was reserved; a full disk raises OSError.
    """
    if _FALLOCATE is None:
        return False
    if _FALLOCATE(fd, 0, offset, length) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSPC, errno.EDQUOT):
        raise OSError(code, os.strerror(code))
    return False  # EOPNOTSUPP and the like: write without reserving


def _no_space(size: int) -> NoSpace:
    return NoSpace(f"Not enough space in the datastore for an upload of {size} bytes")


def check_free_space(directory: Path, size: int) -> None:
    """507 before the body is read when the datastore cannot hold `size` bytes at all."""
    status = os.statvfs(directory)
    if status.f_bavail * status.f_frsize < size:
        raise _no_space(size)


# Upload temp files are flock'ed while written: the kernel drops the lock when the process
# dies, so an unlocked `upload-*` is a killed process's and can go at once (as the dispatcher
# does with its scratch folders; a small twin here, the components ship as separate images).
# The lock holder's own process is told apart by path: on NFS, flock is a POSIX lock, which
# never conflicts within one process.
_WRITING: set[str] = set()


def _create_locked(directory: Path) -> tuple[int, Path]:
    """A new `upload-*` file, locked for as long as the descriptor is open. It is made under a
    hidden name and renamed once locked, so a sweep never sees it unlocked."""
    fd, staging = tempfile.mkstemp(dir=directory, prefix=".upload-")
    path = Path(staging).with_name(Path(staging).name[1:])
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _WRITING.add(str(path))
        os.rename(staging, path)
    except OSError:
        _WRITING.discard(str(path))
        os.close(fd)
        Path(staging).unlink(missing_ok=True)
        raise
    return fd, path


def remove_unlocked(path: Path) -> bool:
    """Remove the upload temp file `path` if no live process holds its lock."""
    if str(path) in _WRITING:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # finished or removed meanwhile
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: an upload in progress
        os.close(fd)
        return False
    try:  # held while removing: no one can take it meanwhile
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)
    return True


class UploadFile:
    """A file-like target for one uploaded part: counts, hashes and caps what is written.

    SHA-256 (about 1.8 GB/s with SHA-NI) runs on a helper thread, one chunk behind the writes:
    hashlib and file writes release the GIL, so hashing overlaps with reading and parsing the
    next chunk. Disk space is reserved a step ahead of the writes, never for what has not
    arrived: a stalled upload holds at most one step.
    """

    def __init__(self, directory: Path, max_bytes: int, expected_bytes: int | None = None,
                 heartbeat: tuple[Callable[[], None], float] | None = None):
        """`expected_bytes`: the request's Content-Length, an upper bound of the part's size.
        `heartbeat`: (call, seconds): `call` runs every so many seconds while data arrives."""
        directory.mkdir(parents=True, exist_ok=True)
        self._heartbeat = heartbeat
        self._next_beat = time.monotonic() + heartbeat[1] if heartbeat else 0.0
        fd, self.path = _create_locked(directory)
        self.max_bytes, self.size = max_bytes, 0
        self._file = os.fdopen(fd, "w+b")
        self._hash = hashlib.sha256()
        self._hasher: ThreadPoolExecutor | None = None
        self._hashing: Future | None = None
        bound = min(expected_bytes or 0, max_bytes)
        self._reserve_limit = bound if bound >= PREALLOCATE_MIN_BYTES else 0
        self._reserved = 0
        try:
            if self._reserve_limit:
                check_free_space(directory, self._reserve_limit)
        except NoSpace:
            self.discard()
            raise

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise RequestEntityTooLarge(
                f"File exceeds the maximum upload size of {self.max_bytes} bytes")
        self._beat()
        self._reserve_ahead()
        self._wait_for_hash()
        if isinstance(data, bytes) and len(data) >= BACKGROUND_HASH_BYTES:  # immutable: safe
            if self._hasher is None:
                self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dss-sha256")
            self._hashing = self._hasher.submit(self._hash.update, data)
        else:
            self._hash.update(data)
        return self._file.write(data)

    def _reserve_ahead(self) -> None:
        """Once the writes pass the reserved end, reserve up to one step beyond them (at most
        the request's length); a full datastore is a 507 with the body still arriving."""
        if self.size <= self._reserved or self._reserved >= self._reserve_limit:
            return
        end = min(self.size + RESERVE_STEP_BYTES, self._reserve_limit)
        try:
            reserved = preallocate(self._file.fileno(), self._reserved, end - self._reserved)
        except OSError:
            raise _no_space(self._reserve_limit) from None
        self._reserved = end if reserved else self._reserve_limit  # unsupported: stop trying

    def _beat(self) -> None:
        if self._heartbeat and time.monotonic() >= self._next_beat:
            call, seconds = self._heartbeat
            call()
            self._next_beat = time.monotonic() + seconds

    def _wait_for_hash(self) -> None:
        if self._hashing is not None:
            self._hashing.result()
            self._hashing = None

    @property
    def sha256(self) -> str:
        self._wait_for_hash()
        return self._hash.hexdigest()

    def __getattr__(self, name):  # seek, read, tell, flush, ... of the real file
        return getattr(self._file, name)

    def close(self) -> None:
        self._stop_hashing()
        if self._reserved and not self._file.closed:
            self._file.truncate(self.size)  # give back what the framing and fields did not use
        self._file.close()
        _WRITING.discard(str(self.path))

    def move_to(self, destination: Path) -> None:
        """Into place durably: the data, then the rename, reach the disk before the upload is
        acknowledged, so a power loss cannot leave a stored file empty or missing while the
        database (which syncs its commits) lists it."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        if self._reserved:
            self._file.truncate(self.size)  # give back what the framing and fields did not use
        self._file.flush()
        os.fsync(self._file.fileno())
        os.replace(self.path, destination)  # still locked: a sweep cannot take it meanwhile
        _fsync_directory(destination.parent)
        self.close()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.close()

    def _stop_hashing(self) -> None:
        if self._hasher is not None:
            self._hasher.shutdown(wait=True)  # after a last write, sha256 is still wanted
            self._hasher = None


def _fsync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def upload_dir(datastore: Path) -> Path:
    return datastore / "tmp"


def safe_name(raw: str | None) -> str:
    """The basename to store an upload under; traversal, absolute paths, control chars -> 400."""
    if not raw:
        raise Invalid("The upload has no file name")
    name = raw.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or (len(name) > 1 and name[1] == ":"):
        raise Invalid(f"Invalid file name {raw!r}: paths are not allowed")
    base = name.rsplit("/", 1)[-1]
    if base in ("", ".", "..") or any(ord(ch) < 32 or ord(ch) == 127 for ch in base):
        raise Invalid(f"Invalid file name {raw!r}")
    if len(base.encode("utf-8", "surrogatepass")) > MAX_NAME_LENGTH:
        raise Invalid(f"Invalid file name {raw!r}: longer than {MAX_NAME_LENGTH} bytes")
    return base


def check_area(area: str) -> str:
    if area not in FILE_AREAS:
        raise NotFound("not found")
    return area


def ticket_dir(datastore: Path, ticket_id: int, area: str) -> Path:
    return datastore / "tickets" / f"{ticket_id:08d}" / area


def attachment_dir(datastore: Path, ticket_id: int) -> Path:
    return datastore / "attachments" / f"{ticket_id:08d}"


def store(db: DB, datastore: Path, ticket_id: int, area: str, upload: UploadFile, raw_name: str) -> TicketFile:
    """Move an upload into the area; the same name replaces the file and keeps its index.

    The row is written first and the file moved last, so that a database error (or a slow lock)
    leaves the stored file as it was; only the commit itself comes after the move.
    """
    name = safe_name(raw_name)
    row = db.scalar(select(TicketFile).where(TicketFile.ticket_id == ticket_id,
                                             TicketFile.area == area, TicketFile.name == name))
    if row is None:
        row = TicketFile(ticket_id=ticket_id, area=area, name=name)
        db.add(row)
    row.size, row.sha256, row.uploaded_at = upload.size, upload.sha256, utcnow()
    db.flush()
    upload.move_to(ticket_dir(datastore, ticket_id, area) / name)
    return row


def listing(db: DB, ticket_id: int, area: str) -> list[TicketFile]:
    """Upload order, workspaces last (the old ASHS daemon takes the last line as the workspace)."""
    rows = db.scalars(select(TicketFile).where(TicketFile.ticket_id == ticket_id,
                                               TicketFile.area == area).order_by(TicketFile.id))
    return sorted(rows, key=lambda row: row.name.lower().endswith(".itksnap"))


_FILES = TicketFile.__table__
_INPUT_NAMES = (select(_FILES.c.name)
                .where(_FILES.c.ticket_id == bindparam("ticket_id"), _FILES.c.area == "input")
                .order_by(_FILES.c.id))


def workspace_file(db: DB, datastore: Path, ticket_id: int) -> Path | None:
    """The ticket's input workspace: the last listed .itksnap file (what the ASHS daemon takes)."""
    names = [name for name in db.scalars(_INPUT_NAMES, {"ticket_id": ticket_id})
             if name.lower().endswith(".itksnap")]
    return ticket_dir(datastore, ticket_id, "input") / names[-1] if names else None


def indexed_file(db: DB, datastore: Path, ticket_id: int, area: str, index: str) -> tuple[Path, TicketFile]:
    try:
        position = int(index)
    except ValueError:
        raise Invalid(f"File index must be a number, got {index!r}") from None
    rows = listing(db, ticket_id, area)
    if not 0 <= position < len(rows):
        raise NotFound(f"Ticket {ticket_id} has no {area} file with index {position}")
    path = ticket_dir(datastore, ticket_id, area) / rows[position].name
    if not path.is_file():
        raise NotFound(f"File {rows[position].name} of ticket {ticket_id} is gone")
    return path, rows[position]


def wipe_ticket(datastore: Path, ticket_id: int) -> None:
    for area in FILE_AREAS:
        shutil.rmtree(ticket_dir(datastore, ticket_id, area), ignore_errors=True)
    _remove_if_empty(ticket_dir(datastore, ticket_id, FILE_AREAS[0]).parent)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty (an upload just arrived), or already gone
        pass


def wipe_area(db: DB, datastore: Path, ticket_id: int, area: str) -> None:
    """The area's rows now, its folder once that commits."""
    db.execute(delete(TicketFile).where(TicketFile.ticket_id == ticket_id, TicketFile.area == area))
    after_commit(db, partial(shutil.rmtree, ticket_dir(datastore, ticket_id, area),
                             ignore_errors=True))


def drop_unlogged_attachments(db: DB, datastore: Path, ticket_id: int) -> None:
    """The ticket's attachments that no log row has taken yet (a provider sends them before the
    message that shows them): rows and files."""
    unlogged = list(db.scalars(select(TicketAttachment).where(
        TicketAttachment.ticket_id == ticket_id,
        TicketAttachment.id.not_in(select(TicketLogAttachment.attachment_id)))))
    paths = [attachment_dir(datastore, ticket_id) / row.filename for row in unlogged]
    for row in unlogged:
        db.delete(row)
    db.flush()
    after_commit(db, partial(_remove_files, paths))


def _remove_files(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def remove_ticket_files(db: DB, datastore: Path, ticket_id: int) -> None:
    for area in FILE_AREAS:
        wipe_area(db, datastore, ticket_id, area)
    after_commit(db, partial(_remove_ticket_folders, datastore, ticket_id))


def _remove_ticket_folders(datastore: Path, ticket_id: int) -> None:
    _remove_if_empty(ticket_dir(datastore, ticket_id, FILE_AREAS[0]).parent)
    shutil.rmtree(attachment_dir(datastore, ticket_id), ignore_errors=True)


def _extension(name: str) -> str:
    """From the first dot, as the original (`.nii.gz`); a name without a dot, or with an
    extension too long to store, gets none (the MIME type is kept apart)."""
    extension = name[name.index("."):] if "." in name else ""
    return extension if len(extension.encode("utf-8")) <= MAX_ATTACHMENT_EXTENSION else ""


def store_attachment(db: DB, datastore: Path, ticket_id: int, upload: UploadFile, raw_name: str,
                     description: str, mime_type: str | None) -> int:
    name = safe_name(raw_name)
    key = uuid.uuid4().hex
    filename = key + _extension(name)
    mime_type = check_mime_type(mime_type) or mimetypes.guess_type(name)[0] \
        or "application/octet-stream"
    row = TicketAttachment(ticket_id=ticket_id, mime_type=mime_type, description=description,
                           uuid=key, filename=filename)
    db.add(row)
    db.flush()
    upload.move_to(attachment_dir(datastore, ticket_id) / filename)
    return row.id


def check_mime_type(value: str | None) -> str | None:
    """The provider's `mime_type`, surrounding blanks removed; None when not given."""
    value = (value or "").strip()
    if value and (len(value) > MAX_MIME_TYPE_LENGTH or not MIME_TYPE.fullmatch(value)):
        raise Invalid(f"Invalid 'mime_type' {value[:80]!r}: expected a media type "
                      "such as image/png or text/plain; charset=utf-8")
    return value or None


def blob(db: DB, datastore: Path, prefix: str) -> tuple[Path, str]:
    row = db.scalar(select(TicketAttachment).where(TicketAttachment.uuid.startswith(prefix.lower()))
                    .order_by(TicketAttachment.id).limit(1))
    path = attachment_dir(datastore, row.ticket_id) / row.filename if row else None
    if row is None or path is None or not path.is_file():
        raise ResourceNotFound(f"Resource {prefix} not found")
    mime_type = row.mime_type or ""
    valid = MIME_TYPE.fullmatch(mime_type)  # stored before the check
    return path, mime_type if valid else "application/octet-stream"
