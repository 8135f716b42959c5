"""Tickets on the consumer side: create, mark ready, status, progress, queue, log, retry, delete."""
from __future__ import annotations

import json
import math
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, case, delete, func, insert, literal, select
from sqlalchemy.orm import Session as DB

from .. import lifecycle
from ..errors import Conflict, Invalid, QuotaExceeded
from ..models import (
    Service,
    Ticket,
    TicketAttachment,
    TicketHistory,
    TicketLog,
    TicketLogAttachment,
    TicketProgress,
    User,
    UserTier,
    table_of,
    utcnow,
)
from . import catalog, files, notify, parameters, workspace_info
from .access import may_read, ticket_not_found
from .auth import Identity

FINISHED_PROGRESS = ("failed", "success", "timeout")


class Attachment(NamedTuple):
    id: int
    description: str
    mime_type: str
    uuid: str


class LogEntry(NamedTuple):
    id: int
    atime: datetime
    category: str
    message: str
    attachments: list[Attachment]


class Detail(NamedTuple):
    """What a client's status poll shows of a ticket (`GET api/tickets/<id>/detail`)."""
    status: str
    progress: float
    queue_position: int | None  # only while ready
    log: list[LogEntry]


_TICKETS, _PROGRESS = table_of(Ticket), table_of(TicketProgress)
_QUEUED = _TICKETS.alias("queued")
_LOG, _LINKS, _ATTACHMENTS = (table_of(TicketLog), table_of(TicketLogAttachment),
                              table_of(TicketAttachment))
# Polls are most of the traffic: a poll lists the user's tickets, then reads the ticket's
# owner, status, claimed progress and queue position in one round trip and its new log
# entries with their attachments in another. The statements are built once, so SQLAlchemy
# reuses their compiled form (building one costs about as much as running it).
_SERVICES = table_of(Service)
_USER_TICKETS = (select(_TICKETS.c.id, _SERVICES.c.name, _TICKETS.c.status)
                 .join(_SERVICES, _SERVICES.c.githash == _TICKETS.c.service_githash)
                 .where(_TICKETS.c.user_id == bindparam("user_id"), _TICKETS.c.status != "deleted")
                 .order_by(_TICKETS.c.id))
_POLLED_TICKET = select(
    _TICKETS.c.user_id, _TICKETS.c.status,
    case((_TICKETS.c.status == "claimed",
          select(func.sum((_PROGRESS.c.chunk_end - _PROGRESS.c.chunk_start) * _PROGRESS.c.progress))
          .where(_PROGRESS.c.ticket_id == _TICKETS.c.id).scalar_subquery())),
    case((_TICKETS.c.status == "ready",
          select(func.count()).select_from(_QUEUED)
          .where(_QUEUED.c.status == "ready", _QUEUED.c.id <= _TICKETS.c.id).scalar_subquery())),
).where(_TICKETS.c.id == bindparam("ticket_id"))
_NEW_LOG_ENTRIES = (
    select(_LOG.c.id, _LOG.c.atime, _LOG.c.category, _LOG.c.message, _ATTACHMENTS.c.id,
           _ATTACHMENTS.c.description, _ATTACHMENTS.c.mime_type, _ATTACHMENTS.c.uuid)
    .select_from(_LOG.outerjoin(_LINKS, _LINKS.c.log_id == _LOG.c.id)
                 .outerjoin(_ATTACHMENTS, _ATTACHMENTS.c.id == _LINKS.c.attachment_id))
    .where(_LOG.c.ticket_id == bindparam("ticket_id"), _LOG.c.id > bindparam("since"))
    .order_by(_LOG.c.id, _ATTACHMENTS.c.id))


def change_status(db: DB, ticket: Ticket, event: str, actors: set[str]) -> str:
    """Apply a transition of the lifecycle table, with its history row."""
    try:
        new_status = lifecycle.transition(ticket.status, event, actors)
    except lifecycle.IllegalTransition as exc:
        raise Conflict(f"Ticket {ticket.id}: {exc}") from None
    if new_status != ticket.status:
        ticket.status = new_status
        db.add(TicketHistory(ticket_id=ticket.id, status=new_status, atime=utcnow()))
        if new_status == "ready":
            notify.ticket_ready(db)
    return new_status


def consumer_actors(identity: Identity, ticket: Ticket) -> set[str]:
    actors = set()
    if ticket.user_id == identity.user_id:
        actors.add(lifecycle.OWNER)
    if identity.sysadmin:
        actors.add(lifecycle.ADMIN)
    return actors


def list_tickets(db: DB, user_id: int) -> list[tuple[int, str, str]]:
    return [(ticket_id, service, status)
            for ticket_id, service, status in db.execute(_USER_TICKETS, {"user_id": user_id})]


def ticket_summaries(db: DB, user: User) -> list[dict]:
    """The user's tickets with what the wire list leaves out (our extension): the scan's name
    and when the ticket was created (UTC)."""
    created = (select(TicketHistory.ticket_id, func.min(TicketHistory.atime).label("at"))
               .group_by(TicketHistory.ticket_id).subquery())
    query = (select(Ticket.id, Service.name, Ticket.status, Ticket.scan_name, created.c.at)
             .join(Service, Service.githash == Ticket.service_githash)
             .join(created, created.c.ticket_id == Ticket.id, isouter=True)
             .where(Ticket.user_id == user.id, Ticket.status != "deleted").order_by(Ticket.id))
    return [{"id": tid, "service": name, "status": status, "scan_name": scan,
             "created": at.strftime("%Y-%m-%dT%H:%M:%SZ") if at else None}
            for tid, name, status, scan, at in db.execute(query)]


# The most open tickets the user may have (their own override, else their tier's), read with
# the user's row locked until the transaction ends: concurrent creates of one user queue here,
# so each counts the tickets the one before it committed and the quota holds. NO KEY UPDATE
# does not block the rows that merely reference the user (sessions, tokens, tickets). SQLite
# ignores it: its BEGIN IMMEDIATE (db.py) already serialises every transaction.
_USERS, _TIERS = table_of(User), table_of(UserTier)
_LOCKED_QUOTA = (select(func.coalesce(_USERS.c.max_tickets,
                                      select(_TIERS.c.max_tickets)
                                      .where(_TIERS.c.tier == _USERS.c.tier).scalar_subquery(),
                                      0))
                 .where(_USERS.c.id == bindparam("user_id"))
                 .with_for_update(key_share=True, of=_USERS))
# The new ticket, unless the user's open tickets (counted in this statement: PostgreSQL reads
# with a fresh snapshot, taken after the lock above was granted) already fill the quota.
_OPEN_TICKETS = (select(func.count()).select_from(_TICKETS)
                 .where(_TICKETS.c.user_id == bindparam("user_id"), _TICKETS.c.status != "deleted")
                 .scalar_subquery())
_NEW_TICKET = (insert(_TICKETS)
               .from_select(["user_id", "service_githash", "status", "attempts"],
                            select(bindparam("user_id"), bindparam("githash"), bindparam("status"),
                                   literal(0)).where(_OPEN_TICKETS < bindparam("quota")))
               .returning(_TICKETS.c.id))
_NEW_HISTORY = insert(table_of(TicketHistory))
_DESCRIPTOR = select(_SERVICES.c.json).where(_SERVICES.c.githash == bindparam("githash"))
_NEW_LOG_ENTRY = insert(_LOG).returning(_LOG.c.id)
_LINK_ATTACHMENTS = insert(_LINKS).from_select(
    ["log_id", "attachment_id"],
    select(bindparam("log_id"), _ATTACHMENTS.c.id)
    .where(_ATTACHMENTS.c.ticket_id == bindparam("ticket_id"),
           _ATTACHMENTS.c.id.not_in(select(_LINKS.c.attachment_id))))


def create(db: DB, identity: Identity, datastore, githash: str | None, name: str | None) -> int:
    service = catalog.resolve(db, githash, name)
    limit = db.execute(_LOCKED_QUOTA, {"user_id": identity.user_id}).scalar_one()
    status = lifecycle.transition(None, "create", {lifecycle.OWNER})
    ticket_id = db.execute(_NEW_TICKET, {"user_id": identity.user_id, "githash": service.githash,
                                         "status": status, "quota": limit}).scalar()
    if ticket_id is None:
        raise QuotaExceeded(f"Maximum allowed number of open tickets ({limit}) exceeded.")
    db.execute(_NEW_HISTORY, {"ticket_id": ticket_id, "status": status, "atime": utcnow()})
    files.wipe_ticket(datastore, ticket_id)
    return ticket_id


def mark_ready(db: DB, identity: Identity, datastore, ticket: Ticket, requested: str) -> str:
    """Queue the ticket, with the parameters and scan name its workspace gives (a refused
    parameter is a 400 and the ticket stays as it was: the transaction is rolled back)."""
    if requested != "ready":
        raise Invalid(f"Changing ticket status to {requested} is not supported")
    status = change_status(db, ticket, "ready", consumer_actors(identity, ticket))
    with db.no_autoflush:  # reads of other tables: the ticket's changes are flushed once, below
        info = workspace_info.read(files.workspace_file(db, datastore, ticket.id))
        values = parameters.resolve(service_parameters(db, ticket), info.parameters)
    ticket.parameters, ticket.scan_name = json.dumps(values), info.scan_name
    append_log(db, ticket.id, "info", "Ticket received and queued for processing")
    return status


def service_parameters(db: DB, ticket: Ticket) -> list[dict]:
    descriptor_text = db.execute(_DESCRIPTOR, {"githash": ticket.service_githash}).scalar()
    try:
        descriptor = json.loads(descriptor_text or "{}")
    except ValueError:
        return []
    return parameters.declared(descriptor) if isinstance(descriptor, dict) else []


def ticket_parameters(db: DB, ticket: Ticket) -> dict:
    """The ticket's typed values; a ticket queued before parameters existed gets the defaults."""
    if ticket.parameters is None:
        return parameters.resolve(service_parameters(db, ticket), {})
    return json.loads(ticket.parameters)


def retry(db: DB, identity: Identity, datastore, ticket: Ticket) -> str:
    status = change_status(db, ticket, "retry", consumer_actors(identity, ticket))
    release_claim(ticket)
    ticket.attempts = 0  # a retry gets the full DSS_MAX_ATTEMPTS again
    files.wipe_area(db, datastore, ticket.id, "results")
    db.execute(delete(TicketProgress).where(TicketProgress.ticket_id == ticket.id))
    append_log(db, ticket.id, "info", "Retrying ticket")
    return status


def delete_ticket(db: DB, ticket: Ticket, actors: set[str], datastore) -> str:
    status = change_status(db, ticket, "delete", actors)
    release_claim(ticket)
    files.remove_ticket_files(db, datastore, ticket.id)
    return status


def release_claim(ticket: Ticket) -> None:
    ticket.claim_id = None
    ticket.claimed_at = None
    ticket.last_activity = None


def total_progress(db: DB, ticket_id: int) -> float:
    total = db.scalar(select(func.sum((TicketProgress.chunk_end - TicketProgress.chunk_start)
                                      * TicketProgress.progress))
                      .where(TicketProgress.ticket_id == ticket_id))
    return max(0.0, float(total or 0.0))


def displayed_progress(db: DB, ticket: Ticket) -> float:
    claimed_total = total_progress(db, ticket.id) if ticket.status == "claimed" else None
    return _shown_progress(ticket.status, claimed_total)


def _shown_progress(status: str, claimed_total: float | None) -> float:
    if status == "claimed":
        return max(0.0, float(claimed_total or 0.0))
    return 1.0 if status in FINISHED_PROGRESS else 0.0


def detail(db: DB, identity: Identity, ticket_id: int, since: int | None) -> Detail:
    """The ticket's status, progress, queue position (while ready) and log entries after
    `since` (None: none), if the caller may read it (access.user_ticket's rule)."""
    row = db.execute(_POLLED_TICKET, {"ticket_id": ticket_id}).first()
    if row is None or not may_read(identity, row[0]):
        raise ticket_not_found(identity, ticket_id)
    _, status, claimed_total, queue_position = row
    entries: list[LogEntry] = []
    if since is not None:
        for log_id, atime, category, message, *attachment in db.execute(
                _NEW_LOG_ENTRIES, {"ticket_id": ticket_id, "since": since}):
            if not entries or entries[-1].id != log_id:
                entries.append(LogEntry(log_id, atime, category, message, []))
            if attachment[0] is not None:
                entries[-1].attachments.append(Attachment(*attachment))
    return Detail(status, _shown_progress(status, claimed_total), queue_position, entries)


def parse_fraction(name: str, value: str | None) -> float:
    try:
        number = float(value or "")
    except ValueError:
        raise Invalid(f"Parameter '{name}' must be a number, got {value!r}") from None
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise Invalid(f"Parameter '{name}' must be between 0 and 1, got {value!r}")
    return number


def set_progress(db: DB, ticket_id: int, start: float, end: float, progress: float) -> None:
    """Spec (b) progress model; a repeated chunk start updates its row instead of failing."""
    if end < start:
        raise Invalid("chunk_end must not be smaller than chunk_start")
    if progress == 0:
        db.execute(delete(TicketProgress).where(TicketProgress.ticket_id == ticket_id,
                                                TicketProgress.chunk_start >= start,
                                                TicketProgress.chunk_end <= end))
        return
    row = db.get(TicketProgress, (ticket_id, start))
    if row is None:
        db.add(TicketProgress(ticket_id=ticket_id, chunk_start=start, chunk_end=end,
                              progress=progress))
    else:
        row.chunk_end, row.progress = end, progress
    db.flush()


def queue_position(db: DB, ticket: Ticket, same_service: bool) -> int:
    query = select(func.count()).select_from(Ticket).where(Ticket.status == "ready",
                                                           Ticket.id <= ticket.id)
    if same_service:
        query = query.where(Ticket.service_githash == ticket.service_githash)
    return db.execute(query).scalar_one()


def append_log(db: DB, ticket_id: int, category: str, message: str) -> int:
    """A log row; it takes every attachment of the ticket not yet linked to a log row."""
    log_id = db.execute(_NEW_LOG_ENTRY, {"ticket_id": ticket_id, "category": category,
                                         "message": message, "atime": utcnow()}).scalar_one()
    db.execute(_LINK_ATTACHMENTS, {"log_id": log_id, "ticket_id": ticket_id})
    return log_id


def parse_since(value: str | None) -> int | None:
    """Log id to start after; a non-numeric value matches nothing (as SRV2), None = 0."""
    if value in (None, ""):
        return 0
    try:
        return int(value)
    except ValueError:
        return None


def log_entries(db: DB, ticket_id: int, since: int | None) -> list[TicketLog]:
    if since is None:
        return []
    return list(db.scalars(select(TicketLog).where(TicketLog.ticket_id == ticket_id,
                                                   TicketLog.id > since).order_by(TicketLog.id)))


def attachments_of(db: DB, log_ids: list[int]) -> dict[int, list[TicketAttachment]]:
    found: dict[int, list[TicketAttachment]] = {log_id: [] for log_id in log_ids}
    if not log_ids:
        return found
    query = (select(TicketLogAttachment.log_id, TicketAttachment)
             .join(TicketAttachment, TicketAttachment.id == TicketLogAttachment.attachment_id)
             .where(TicketLogAttachment.log_id.in_(log_ids)).order_by(TicketAttachment.id))
    for log_id, attachment in db.execute(query):
        found[log_id].append(attachment)
    return found


def log_ticket(db: DB, log_id: int | str) -> Ticket | None:
    try:
        log_id = int(log_id)
    except (TypeError, ValueError):
        return None
    entry = db.get(TicketLog, log_id) if 0 < log_id < 2 ** 31 else None
    return db.get(Ticket, entry.ticket_id) if entry else None


def admin_overview(db: DB) -> list[tuple]:
    """(id, email, service name, status, minutes between first and last history row, rounded to
    whole minutes as a float: SRV2's `5.0`, spec h.4)."""
    span = (select(TicketHistory.ticket_id, func.min(TicketHistory.atime).label("first"),
                   func.max(TicketHistory.atime).label("last"))
            .group_by(TicketHistory.ticket_id).subquery())
    query = (select(Ticket.id, User.email, Service.name, Ticket.status, span.c.first, span.c.last)
             .join(User, User.id == Ticket.user_id)
             .join(Service, Service.githash == Ticket.service_githash)
             .join(span, span.c.ticket_id == Ticket.id, isouter=True)
             .where(Ticket.status != "deleted").order_by(Ticket.id))
    return [(tid, email, name, status,
             float(round((last - first).total_seconds() / 60)) if first and last else 0.0)
            for tid, email, name, status, first, last in db.execute(query)]
