"""Settings of the `dss` command line: where it keeps the server and session between runs.

Besides these, only the transport (api.py) reads the environment: proxies and a CA bundle.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_SERVER = "http://127.0.0.1:8080"


def config_path() -> Path:
    """`DSS_CONFIG`, else `~/.config/dss/config.json`."""
    return Path(os.environ.get("DSS_CONFIG", "~/.config/dss/config.json")).expanduser()


@dataclass
class Login:
    server: str
    session_id: str | None = None
    email: str | None = None


class ConfigFileError(ValueError):
    """The stored login cannot be read; the message names the file."""


def load_login(path: Path | None = None) -> Login | None:
    """The stored login, or None when there is none yet."""
    path = path or config_path()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return Login(server=str(document["server"]), session_id=document.get("session_id"),
                     email=document.get("email"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigFileError(f"cannot read {path}: {exc}; run `dss login URL` again") from None


def save_login(login: Login, path: Path | None = None) -> Path:
    """Write the login readable by the owner only (0600), replacing the file atomically."""
    path = path or config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".config-", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(login), out, indent=2)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
