"""Per-ticket scratch folders under DSS_WORK_DIR, each locked (flock) while its ticket runs,
so that the folders of a killed dispatcher, whose locks the kernel dropped, are recognised and
removed at the next start. A lock, not the owner's pid: in a container the restarted
dispatcher is pid 1 again, like the killed one."""
from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import uuid
from pathlib import Path

WORKDIR_NAME = re.compile(r"^\.?ticket_\d{8}_\d+_[0-9a-f]{8}$")   # "." while being created
PROBE_BYTES = 1 << 20   # a folder that cannot take 1 MiB cannot take a CT either
# errors that say the scratch disk itself is at fault, not the ticket
LOCAL_FAULT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                      errno.EIO}


def unwritable_reason(work_dir: Path) -> str | None:
    """Why the scratch folder cannot take a ticket's files (None when it can): it is created
    if missing and must take a small file, written through to the disk."""
    probe = work_dir / f".probe_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as out:
            out.write(bytes(PROBE_BYTES))
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        return f"cannot write in {work_dir} ({exc.strerror or exc})"
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
    return None


def remove_stale_workdirs(work_dir: Path) -> int:
    """Scratch folders nobody holds locked: left by a dispatcher that was killed."""
    removed = 0
    for path in work_dir.glob("*ticket_*"):
        if not (WORKDIR_NAME.match(path.name) and path.is_dir()):
            continue
        lock = _try_lock(path)
        if lock is not None:   # held while removing: no one can take it meanwhile
            try:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
            finally:
                os.close(lock)
    return removed


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding `path`'s lock, or None if someone else holds it."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:   # gone meanwhile
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return descriptor
    except OSError:
        os.close(descriptor)
        return None


def new_workdir(work_dir: Path, ticket_id: int) -> Path:
    return work_dir / f"ticket_{ticket_id:08d}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def create_locked(path: Path) -> int:
    """Create the scratch folder `path` and lock it for as long as the returned descriptor is
    open. It is made under a hidden name and renamed once locked, so a starting dispatcher
    never sees it unlocked."""
    staging = path.with_name("." + path.name)
    staging.mkdir(parents=True)
    descriptor = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        staging.rename(path)
    except OSError:
        os.close(descriptor)
        raise
    return descriptor
