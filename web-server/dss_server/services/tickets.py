"""Tickets on the consumer side: create, mark ready, status, progress, queue, log, retry, delete."""
from __future__ import annotations

import json
import math

from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.orm import Session as DB

from .. import lifecycle
from ..errors import DSSError
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
    utcnow,
)
from . import catalog, files, notify, parameters, workspace_info
from .auth import Identity

FINISHED_PROGRESS = ("failed", "success", "timeout")


def change_status(db: DB, ticket: Ticket, event: str, actors: set[str]) -> str:
    """Apply a transition of the lifecycle table, with its history row."""
    try:
        new_status = lifecycle.transition(ticket.status, event, actors)
    except lifecycle.IllegalTransition as exc:
        raise DSSError(409, f"Ticket {ticket.id}: {exc}") from None
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
    query = (select(Ticket.id, Service.name, Ticket.status)
             .join(Service, Service.githash == Ticket.service_githash)
             .where(Ticket.user_id == user_id, Ticket.status != "deleted").order_by(Ticket.id))
    return [(ticket_id, service, status) for ticket_id, service, status in db.execute(query)]


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


def ticket_quota(db: DB, user: User) -> int:
    """The most open tickets the user may have: their own override, else their tier's."""
    if user.max_tickets is not None:
        return user.max_tickets
    return db.scalar(select(UserTier.max_tickets).where(UserTier.tier == user.tier)) or 0


def _lock_user(db: DB, user_id: int) -> User:
    """The user's row, locked until the transaction ends: concurrent creates of one user queue
    here, so each counts the tickets the one before it committed and the quota holds. NO KEY
    UPDATE does not block the rows that merely reference the user (sessions, tokens, tickets).
    SQLite ignores it: its BEGIN IMMEDIATE (db.py) already serialises every transaction."""
    return db.scalars(select(User).where(User.id == user_id)
                      .with_for_update(key_share=True).execution_options(populate_existing=True)).one()


def create(db: DB, identity: Identity, datastore, githash: str | None, name: str | None) -> int:
    service = catalog.resolve(db, githash, name)
    user = _lock_user(db, identity.user_id)
    limit = ticket_quota(db, user)
    open_tickets = db.execute(select(func.count()).select_from(Ticket)
                              .where(Ticket.user_id == user.id, Ticket.status != "deleted")).scalar_one()
    if open_tickets >= limit:
        raise DSSError(400, f"Maximum allowed number of open tickets ({limit}) exceeded.")
    status = lifecycle.transition(None, "create", {lifecycle.OWNER})
    ticket = Ticket(user_id=user.id, service_githash=service.githash, status=status, attempts=0)
    db.add(ticket)
    db.flush()
    db.add(TicketHistory(ticket_id=ticket.id, status=status, atime=utcnow()))
    files.wipe_ticket(datastore, ticket.id)
    return ticket.id


def mark_ready(db: DB, identity: Identity, datastore, ticket: Ticket, requested: str) -> str:
    """Queue the ticket, with the parameters and scan name its workspace gives (a refused
    parameter is a 400 and the ticket stays as it was: the transaction is rolled back)."""
    if requested != "ready":
        raise DSSError(400, f"Changing ticket status to {requested} is not supported")
    status = change_status(db, ticket, "ready", consumer_actors(identity, ticket))
    info = workspace_info.read(files.workspace_file(db, datastore, ticket.id))
    values = parameters.resolve(service_parameters(db, ticket), info.parameters)
    ticket.parameters, ticket.scan_name = json.dumps(values), info.scan_name
    append_log(db, ticket.id, "info", "Ticket received and queued for processing")
    return status


def service_parameters(db: DB, ticket: Ticket) -> list[dict]:
    service = db.get_one(Service, ticket.service_githash)
    try:
        descriptor = json.loads(service.json or "{}")
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
    if ticket.status == "claimed":
        return total_progress(db, ticket.id)
    return 1.0 if ticket.status in FINISHED_PROGRESS else 0.0


def parse_fraction(name: str, value: str | None) -> float:
    try:
        number = float(value or "")
    except ValueError:
        raise DSSError(400, f"Parameter '{name}' must be a number, got {value!r}") from None
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise DSSError(400, f"Parameter '{name}' must be between 0 and 1, got {value!r}")
    return number


def set_progress(db: DB, ticket_id: int, start: float, end: float, progress: float) -> None:
    """Spec (b) progress model; a repeated chunk start updates its row instead of failing."""
    if end < start:
        raise DSSError(400, "chunk_end must not be smaller than chunk_start")
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
    entry = TicketLog(ticket_id=ticket_id, category=category, message=message, atime=utcnow())
    db.add(entry)
    db.flush()
    unlinked = (select(literal(entry.id), TicketAttachment.id)
                .where(TicketAttachment.ticket_id == ticket_id,
                       TicketAttachment.id.not_in(select(TicketLogAttachment.attachment_id))))
    db.execute(insert(TicketLogAttachment).from_select(["log_id", "attachment_id"], unlinked))
    return entry.id


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
