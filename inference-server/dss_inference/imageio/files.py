"""Filesystem helpers, and error texts that do not show the server's paths."""
from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)
COPY_CHUNK = 1024 * 1024


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def itk_reason(exc: RuntimeError) -> str:
    """What an ITK exception says is wrong, for the client: the "ERROR:" line unless it only
    announces details (ends with ":"), then the last line; without the server's file paths,
    which the log keeps."""
    log.info("ITK refused an input: %s", exc)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line.split("ERROR:", 1)[1].strip() for line in lines if "ERROR:" in line]
    if errors and not errors[0].endswith(":"):
        reason = errors[0]
    else:
        reason = lines[-1] if lines else "unknown error"
    # "NrrdImageIO(0x55e3...): " and "[nrrd] _nrrdHeaderCheck: " say where, not what
    reason = re.sub(r"^(\w+\(0x[0-9a-fA-F]+\):\s*|\[\w+\]\s*\w+:\s*)+", "", reason)
    return without_paths(reason)[:300]


# A quoted string holding a "/", or an unquoted absolute path.
_PATH = re.compile(r"\"[^\"]*/[^\"]*\"|'[^']*/[^']*'|(?<![\w.])/[^\s\"':,]+")


def without_paths(text: str) -> str:
    """text with file paths replaced: error answers must not show the server's folders."""
    return _PATH.sub("the file", text)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
