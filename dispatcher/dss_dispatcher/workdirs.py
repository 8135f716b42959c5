"""Per-ticket scratch folders under DSS_WORK_DIR, named after the process that owns them, so
the folders of a killed dispatcher can be recognised and removed at the next start."""
from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from pathlib import Path

WORKDIR_NAME = re.compile(r"^ticket_\d{8}_(\d+)_[0-9a-f]{8}$")
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
    """Scratch folders left by a dispatcher process that was killed (its pid is gone)."""
    removed = 0
    for path in work_dir.glob("ticket_*"):
        found = WORKDIR_NAME.match(path.name)
        if found and path.is_dir() and not _process_alive(int(found.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_workdir(work_dir: Path, ticket_id: int) -> Path:
    return work_dir / f"ticket_{ticket_id:08d}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
