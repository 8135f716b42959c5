"""Per-ticket scratch folders under DSS_WORK_DIR, named after the process that owns them, so
the folders of a killed dispatcher can be recognised and removed at the next start."""
from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

WORKDIR_NAME = re.compile(r"^ticket_\d{8}_(\d+)_[0-9a-f]{8}$")


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
