"""Settings of a provider process (`dss serve`, `python -m dss_dispatcher`): the environment.
The only module of the SDK that reads the environment."""
from __future__ import annotations

import math
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import overload
from urllib.parse import urlsplit

MAX_PORT = 65535


class ConfigError(ValueError):
    """A setting the provider cannot work with; the message says which."""


@dataclass(frozen=True)
class Config:
    server_url: str
    provider_token: str
    provider_name: str
    provider_code: str
    workers: int
    shared_datastore: Path | None
    metrics_port: int
    log_json: bool
    work_dir: Path
    claim_wait: float          # seconds a claim long-polls on the server
    poll_interval: float       # pause after an empty claim that came back at once
    retry_budget: float        # seconds a transient failure is retried before the ticket fails


@overload
def _env(name: str, default: str) -> str: ...
@overload
def _env(name: str, default: None) -> str | None: ...
def _env(name: str, default: str | None) -> str | None:
    value = os.environ.get(name, default)
    return default if value == "" else value


def _number(name: str, text: str | None, kind=float, minimum=0, maximum=None):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value):   # nan would pass every comparison below
        raise ConfigError(f"{name} must be a finite number, got {text!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {value}")
    return value


def _flag(name: str) -> bool:
    """1/true/yes/on or 0/false/no/off, as the web server and the inference server read them."""
    text = (_env(name, "0") or "0").strip().lower()
    if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ConfigError(f"{name} must be 1 or 0 (also true/false, yes/no, on/off), got {text!r}")
    return text in ("1", "true", "yes", "on")


def _port(name: str, default: str, minimum: int = 0) -> int:
    return _number(name, _env(name, default), int, minimum, MAX_PORT)


def http_url(name: str, text: str) -> str:
    """The whole of `text` is an http(s) URL with a host (and a valid port, if any)."""
    try:
        parts = urlsplit(text)
        valid = (parts.scheme in ("http", "https") and bool(parts.hostname)
                 and not re.search(r"\s", text) and (parts.port or 0) >= 0)
    except ValueError:   # a port that is not a number in 0-65535
        valid = False
    if not valid:
        raise ConfigError(f"{name} must be http://HOST[:PORT] or https://HOST[:PORT], "
                          f"got {text!r}")
    return text.rstrip("/")


def provider_settings() -> dict:
    """The settings every provider process shares, as Config's keyword arguments."""
    token = (_env("DSS_PROVIDER_TOKEN", "") or "").strip()
    if not token:
        raise ConfigError("DSS_PROVIDER_TOKEN is required: a reusable provider token "
                          "(python -m dss_server issue-token EMAIL --reusable)")
    shared = _env("DSS_SHARED_DATASTORE", None)
    return dict(
        server_url=http_url("SERVER_URL", _env("SERVER_URL", "http://127.0.0.1:8080")),
        provider_token=token,
        provider_name=_env("DSS_PROVIDER_NAME", "local"),
        provider_code=_env("DSS_PROVIDER_CODE", socket.gethostname()),
        workers=_number("DSS_WORKERS", _env("DSS_WORKERS", "1"), int, 1),
        shared_datastore=Path(shared) if shared else None,
        metrics_port=_port("DSS_METRICS_PORT", "9100"),
        log_json=_flag("DSS_LOG_JSON"),
        work_dir=Path(_env("DSS_WORK_DIR", "./var/dispatcher")),
        claim_wait=_number("DSS_CLAIM_WAIT", _env("DSS_CLAIM_WAIT", "20")),
        poll_interval=_number("DSS_POLL_INTERVAL", _env("DSS_POLL_INTERVAL", "5")),
        retry_budget=_number("DSS_RETRY_BUDGET", _env("DSS_RETRY_BUDGET", "120")),
    )


def load_config() -> Config:
    return Config(**provider_settings())


def child_environment(**overrides: str) -> dict[str, str]:
    """The environment for a child process: ours, with `overrides` on top."""
    return {**os.environ, **overrides}
