"""Parsing of the DSS wire formats: the only place in the client that reads response bodies.

The server answers in four shapes (spec 0.1): CSV rows with `\\r\\n` endings and no header, bare
text scalars without a trailing newline, the literal `None` for "nothing to claim", and JSON
wrapped as `{"result": ...}`. Everything here is pure: text in, Python values out.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any, NamedTuple


class WireFormatError(ValueError):
    """A response body that does not have the shape the protocol promises."""


class Service(NamedTuple):
    name: str
    githash: str
    version: str
    shortdesc: str


class Ticket(NamedTuple):
    id: int
    service: str
    status: str


class LogEntry(NamedTuple):
    id: int
    atime: str
    category: str
    attachments: int
    message: str


class Attachment(NamedTuple):
    id: int
    description: str
    mime_type: str
    url: str


class FileEntry(NamedTuple):
    index: int  # type: ignore[assignment]  # the wire's name; shadows tuple.index, which no caller needs
    name: str


class ProviderService(NamedTuple):
    name: str
    version: str
    githash: str
    provider: str


class Claim(NamedTuple):
    ticket_id: int
    githash: str
    status: str


class AvailableService(NamedTuple):
    githash: str
    name: str
    ready: int


class ProviderUser(NamedTuple):
    id: int
    email: str
    admin: bool


class AdminTicket(NamedTuple):
    id: int
    email: str
    service: str
    status: str
    duration: float | None


LOGIN_PREFIX = "logged in as "
NO_CLAIM_BODY = "None"


def parse_csv(body: str) -> list[list[str]]:
    """Rows of a headerless CSV body; quoted commas, doubled quotes and embedded newlines kept."""
    if not body.strip():
        return []
    return [row for row in csv.reader(io.StringIO(body, newline="")) if row]


def _rows(body: str, columns: int, what: str) -> list[list[str]]:
    rows = parse_csv(body)
    for row in rows:
        if len(row) < columns:
            raise WireFormatError(f"{what}: expected {columns} columns, got {row!r}")
    return rows


def _int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise WireFormatError(f"{what}: expected an integer, got {text!r}") from None


def _float_or_none(text: str) -> float | None:
    return float(text) if text.strip() else None


def _bool(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "t")


def parse_int(body: str, what: str = "response") -> int:
    """A bare-text integer such as a new ticket, log or attachment id (`17`)."""
    return _int(body, what)


def parse_float(body: str, what: str = "response") -> float:
    """A bare-text float such as total progress (`0.4`)."""
    try:
        return float(body.strip())
    except ValueError:
        raise WireFormatError(f"{what}: expected a number, got {body!r}") from None


def parse_text(body: str) -> str:
    """A bare-text scalar such as a status (`ready`) or `success`."""
    return body.strip()


def parse_login(body: str) -> str:
    """The e-mail of `logged in as <email> \\n`, or of `{"result": {"email": ...}}`."""
    if body.lstrip().startswith("{"):
        return str(parse_result(body)["email"])
    if not body.startswith(LOGIN_PREFIX):
        raise WireFormatError(f"login: expected '{LOGIN_PREFIX}<email>', got {body[:80]!r}")
    return body[len(LOGIN_PREFIX):].strip()


def parse_result(body: str) -> Any:
    """The value under `result` of a JSON body."""
    try:
        document = json.loads(body)
    except ValueError:
        raise WireFormatError(f"expected JSON, got {body[:80]!r}") from None
    if not isinstance(document, dict) or "result" not in document:
        raise WireFormatError(f"expected {{\"result\": ...}}, got {body[:80]!r}")
    return document["result"]


def parse_json(body: str) -> Any:
    """A bare JSON document (the service detail is not wrapped in `result`)."""
    try:
        return json.loads(body)
    except ValueError:
        raise WireFormatError(f"expected JSON, got {body[:80]!r}") from None


def parse_services(body: str) -> list[Service]:
    """`GET /api/services`: `name,githash,version,shortdesc`."""
    return [Service(r[0], r[1], r[2], r[3]) for r in _rows(body, 4, "services")]


def parse_admin_services(body: str) -> list[Service]:
    """`GET /api/admin/providers/<p>/services`: `name,version,githash,shortdesc` (other order)."""
    return [Service(r[0], r[2], r[1], r[3]) for r in _rows(body, 4, "provider services")]


def parse_tickets(body: str) -> list[Ticket]:
    """`GET /api/tickets`: `id,service,status`."""
    return [Ticket(_int(r[0], "ticket id"), r[1], r[2]) for r in _rows(body, 3, "tickets")]


def parse_log(body: str) -> list[LogEntry]:
    """`GET /api/tickets/<id>/log`: `id,atime,category,attachments,message`.

    `attachments` is a count; a message with commas arrives quoted.
    """
    return [LogEntry(_int(r[0], "log id"), r[1], r[2], _int(r[3] or "0", "attachment count"),
                     ",".join(r[4:]))
            for r in _rows(body, 5, "log")]


def parse_attachments(body: str) -> list[Attachment]:
    """`GET /api/tickets/logs/<id>/attachments`: `id,description,mime_type,url`."""
    return [Attachment(_int(r[0], "attachment id"), r[1], r[2], r[3])
            for r in _rows(body, 4, "attachments")]


def parse_files(body: str) -> list[FileEntry]:
    """`GET .../files/<area>`: `index,filename`; an empty body is an empty list."""
    return [FileEntry(_int(r[0], "file index"), r[1]) for r in _rows(body, 2, "files")]


def parse_provider_services(body: str) -> list[ProviderService]:
    """`GET /api/pro/services`: `name,version,githash,provider`."""
    return [ProviderService(r[0], r[1], r[2], r[3]) for r in _rows(body, 4, "provider services")]


def parse_claim(body: str) -> Claim | None:
    """`POST /api/pro/services/claims`: `None` (exactly) when nothing was ready, else one row."""
    if body == NO_CLAIM_BODY:
        return None
    rows = _rows(body, 3, "claim")
    if len(rows) != 1:
        raise WireFormatError(f"claim: expected one row, got {len(rows)}")
    ticket_id, githash, status = rows[0][:3]
    return Claim(_int(ticket_id, "claimed ticket id"), githash, status)


def parse_available(body: str) -> list[AvailableService]:
    """`POST /api/pro/services/available`: `service_githash,service_name,ready_tickets`."""
    return [AvailableService(r[0], r[1], _int(r[2], "ready tickets"))
            for r in _rows(body, 3, "available services")]


def parse_names(body: str) -> list[str]:
    """`GET /api/admin/providers`: one name per row."""
    return [r[0] for r in _rows(body, 1, "providers")]


def parse_provider_users(body: str) -> list[ProviderUser]:
    """`GET /api/admin/providers/<p>/users`: `id,email,admin`."""
    return [ProviderUser(_int(r[0], "user id"), r[1], _bool(r[2]))
            for r in _rows(body, 3, "provider users")]


def parse_admin_tickets(body: str) -> list[AdminTicket]:
    """`GET /api/admin/tickets`: `id,email,service,status,duration`."""
    return [AdminTicket(_int(r[0], "ticket id"), r[1], r[2], r[3], _float_or_none(r[4]))
            for r in _rows(body, 5, "admin tickets")]


def parse_stats(body: str) -> dict[str, Any]:
    """`GET /api/services/<h>/stats?format=json`: the one row as a dict."""
    result = parse_result(body)
    if isinstance(result, list):
        return dict(result[0]) if result else {}
    if isinstance(result, dict):
        return result
    raise WireFormatError(f"stats: unexpected result {result!r}")
