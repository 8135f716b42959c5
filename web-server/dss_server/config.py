"""Every setting of the web server, read once from the environment (the only module that does)."""
from __future__ import annotations

import math
import os
import re
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, overload

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

GIB = 1024 ** 3
MAX_PORT = 65535
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
# The one driver of each backend the server runs on (db.py and the 503 handlers speak psycopg2).
DRIVERS = {"postgresql": "psycopg2", "postgres": "psycopg2", "sqlite": "pysqlite"}


@overload
def _env(name: str, default: str) -> str: ...
@overload
def _env(name: str, default: None = None) -> str | None: ...
def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


class ConfigError(RuntimeError):
    """The configuration cannot work; the message says what to set."""


@overload
def _number(name: str, default: str, minimum: float, maximum: float = ..., *,
            whole: Literal[True]) -> int: ...
@overload
def _number(name: str, default: str, minimum: float, maximum: float = ...,
            whole: Literal[False] = ...) -> float: ...
def _number(name: str, default: str, minimum: float, maximum: float = math.inf,
            whole: bool = False) -> float:
    """The variable as a finite number in range (whole numbers may be written 4e9); unset or
    empty (compose passes "") is the default."""
    text = (_env(name) or "").strip() or default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not minimum <= value <= maximum or (whole and not value.is_integer()):
        upper = f" and at most {maximum:g}" if maximum < math.inf else ""
        raise ConfigError(f"{name}={text!r}: expected {'a whole number' if whole else 'a number'}"
                          f" of at least {minimum:g}{upper}")
    return int(value) if whole else value


def _flag(name: str) -> bool:
    """1/true/yes/on or 0/false/no/off (unset or empty: off); anything else is refused rather
    than guessed, so `false` can never switch a setting on."""
    text = (_env(name) or "0").strip().lower()
    if text not in TRUE_WORDS + FALSE_WORDS:
        raise ConfigError(f"{name}={text!r}: expected 1 or 0 (also true/false, yes/no, on/off)")
    return text in TRUE_WORDS


def _choice(name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (unset or empty: the first), case-insensitive; anything else is refused."""
    text = (_env(name) or "").strip().lower() or choices[0]
    if text not in choices:
        raise ConfigError(f"{name}={text!r}: expected one of {', '.join(choices)}")
    return text


def _domains(name: str) -> tuple[str, ...]:
    """A comma-separated list of email domains (`example.org, hospital.example`), lower case;
    unset or empty: none. A typo must not silently let everyone in or no one."""
    text = (_env(name) or "").strip()
    domains = tuple(part.strip().lower() for part in text.split(",")) if text else ()
    wrong = [domain for domain in domains if not _DOMAIN.match(domain)]
    if wrong:
        raise ConfigError(f"{name}={text!r}: expected comma-separated domain names such as "
                          f"'example.org,example.com' (not {', '.join(map(repr, wrong))})")
    return domains


@dataclass(frozen=True)
class Config:
    database_url: str
    embedded: bool
    noauth: bool
    port: int
    secret_key: str | None
    datastore: Path
    var_dir: Path
    max_upload_bytes: int
    claim_lease: float
    max_attempts: int
    public_url: str | None
    log_json: bool
    max_claim_wait: float = 60.0
    body_timeout: float = 30.0  # a request's headers or body arriving no byte for so long: dropped / 408
    claim_waits: int = 8  # `wait=` claims one process holds at once (half of gunicorn's threads)
    claim_waits_per_account: int = 4  # ... of them for one account
    migrate_on_start: bool | None = None  # None: only in embedded mode
    lease_sweep: bool = True  # background expiry of overdue claims (claims also sweep, 1/s)
    oidc_issuer: str | None = None  # OpenID Connect sign-in of the web pages (unset: off)
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_allowed_domains: tuple[str, ...] = ()  # email domains OIDC may sign in (empty: any)
    claim_order: str = "fair"  # services/claims.py CLAIM_ORDERS: fair share, or lowest id first

    def with_overrides(self, **overrides) -> "Config":
        return replace(self, **overrides)


def database_url_for_driver(text: str) -> str:
    """The URL on the project's driver. Platforms hand out postgres:// and postgresql://, which
    SQLAlchemy 2.1 would give to psycopg 3 (not installed): both run on psycopg2. Any other
    backend or driver is refused here, in one line, rather than by an import error later."""
    try:
        url = make_url(text)
    except ArgumentError:
        raise ConfigError("DATABASE_URL is not a database URL: expected "
                          "postgresql://USER:PASSWORD@HOST:PORT/NAME or sqlite:///PATH") from None
    backend, _, driver = url.drivername.partition("+")
    if backend not in DRIVERS or driver not in ("", DRIVERS[backend]):
        raise ConfigError(f"DATABASE_URL={shown_url(url)!r}: {url.drivername} is not supported: "
                          f"expected postgresql://USER:PASSWORD@HOST:PORT/NAME (psycopg2) or "
                          f"sqlite:///PATH")
    if backend == "sqlite":
        return text
    return url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def shown_url(url: str | URL) -> str:
    """The database URL to print: the password as ***."""
    return make_url(url).render_as_string(hide_password=True)


def _database_url(var_dir: Path) -> tuple[str, bool]:
    url = _env("DATABASE_URL")
    if url:
        return database_url_for_driver(url), False
    host = _env("POSTGRES_PORT_5432_TCP_ADDR")
    if host:
        port = _env("POSTGRES_PORT_5432_TCP_PORT", "5432")
        name = _env("ITK_SNAP_SERVER_DATABASE_NAME", "admin_db")
        user = _env("ITK_SNAP_SERVER_DATABASE_USERNAME", "admin_user")
        password = _env("ITK_SNAP_SERVER_DATABASE_PASSWORD", "")
        auth = f"{user}:{password}" if password else user
        return f"postgresql+psycopg2://{auth}@{host}:{port}/{name}", False
    return f"sqlite:///{var_dir / 'dss.sqlite3'}", True


def _embedded_secret(var_dir: Path) -> str:
    """Embedded mode keeps a generated secret in var/secret_key so restarts keep browser sessions."""
    path = var_dir / "secret_key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip()


def load_config(**overrides) -> Config:
    """Build the configuration from the environment; keyword overrides win (tests use them)."""
    var_dir = Path(overrides.pop("var_dir", None) or "var").resolve()
    database_url, embedded = _database_url(var_dir)
    if "database_url" in overrides:
        database_url = database_url_for_driver(overrides.pop("database_url"))
        embedded = overrides.pop("embedded", database_url.startswith("sqlite"))
    noauth = overrides.pop("noauth", None)
    if noauth is None:
        noauth = _flag("ITK_SNAP_SERVER_NOAUTH")
    secret_key = overrides.pop("secret_key", _env("DSS_SECRET_KEY"))
    if not secret_key:
        if embedded:
            secret_key = _embedded_secret(var_dir)
        elif noauth:
            secret_key = secrets.token_hex(32)
        else:
            raise ConfigError("DSS_SECRET_KEY is not set: set it to a long random string "
                              "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`), "
                              "or run with ITK_SNAP_SERVER_NOAUTH=1 for a test deployment.")
    config = Config(
        database_url=database_url,
        embedded=embedded,
        noauth=noauth,
        port=listen_port(),
        secret_key=secret_key,
        datastore=Path(_env("DSS_DATASTORE", str(var_dir / "datastore"))).resolve(),
        var_dir=var_dir,
        max_upload_bytes=_number("DSS_MAX_UPLOAD_BYTES", str(4 * GIB), 1, whole=True),
        claim_lease=_number("DSS_CLAIM_LEASE", "600", 1),
        max_attempts=_number("DSS_MAX_ATTEMPTS", "2", 1, whole=True),
        public_url=(_env("DSS_PUBLIC_URL") or None),
        log_json=_flag("DSS_LOG_JSON"),
        body_timeout=body_timeout(),
        claim_waits=_number("DSS_CLAIM_WAITS", "8", 0, whole=True),
        claim_waits_per_account=_number("DSS_CLAIM_WAITS_PER_ACCOUNT", "4", 0, whole=True),
        oidc_issuer=_env("DSS_OIDC_ISSUER") or None,
        oidc_client_id=_env("DSS_OIDC_CLIENT_ID") or None,
        oidc_client_secret=_env("DSS_OIDC_CLIENT_SECRET") or None,
        oidc_allowed_domains=_domains("DSS_OIDC_ALLOWED_DOMAINS"),
        claim_order=_choice("DSS_CLAIM_ORDER", ("fair", "fifo")),
    )
    if "datastore" in overrides:
        overrides["datastore"] = Path(overrides["datastore"]).resolve()
    return config.with_overrides(**overrides)


def listen_port() -> int:
    """PORT alone, for gunicorn.conf.py (which must not need the rest of the configuration)."""
    return _number("PORT", "8080", 1, MAX_PORT, whole=True)


def body_timeout() -> float:
    """DSS_BODY_TIMEOUT alone, for the gunicorn worker (dss_server.gworker) too."""
    return _number("DSS_BODY_TIMEOUT", "30", 1)
