"""What the claiming provider does to its ticket: fenced access, lease renewal, final status."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from .. import lifecycle
from ..errors import Conflict, Invalid
from ..metrics import observe_ticket_finished
from ..models import Ticket, TicketHistory
from . import leases, tickets
from .access import claimed_ticket, parse_id
from .auth import Identity

PROVIDER_STATUSES = ("success", "failed")


def expire_overdue(db: DB, ticket_id, policy: leases.ClaimPolicy) -> bool:
    """Expire the ticket's claim if its lease is overdue; True if it did. The caller commits
    that before active_ticket, so the late write is refused with 409 and the expiry stays."""
    ticket = db.scalar(select(Ticket).where(Ticket.id == parse_id(ticket_id)).with_for_update())
    if ticket is None or not leases.is_expired(ticket, policy.lease):
        return False
    leases.expire(db, ticket, policy)
    return True


def active_ticket(db: DB, identity: Identity, ticket_id) -> Ticket:
    """The ticket if the caller holds its current claim (expire_overdue first); renews the lease."""
    ticket = claimed_ticket(db, identity, ticket_id)
    if ticket.status == "claimed":
        leases.touch(ticket)
    return ticket


def require_writable(ticket: Ticket) -> Ticket:
    """An active ticket, for a log line, file, attachment or progress: a final status keeps its
    claim (the provider may repeat it), but what the user was shown as done must not change."""
    if ticket.status != "claimed":
        raise Conflict(f"Ticket {ticket.id} is {ticket.status}: its provider can no longer "
                       f"write to it (logs, files, attachments and progress are taken only "
                       f"while it is claimed)")
    return ticket


def set_status(db: DB, ticket: Ticket, requested: str) -> str:
    """claimed -> success|failed; repeating the final status is a no-op; changing it is 409."""
    if requested not in PROVIDER_STATUSES:
        raise Invalid(f"Cannot set status of ticket to {requested}")
    was = ticket.status
    status = tickets.change_status(db, ticket, requested, {lifecycle.PROVIDER})
    if was == "claimed":
        _observe_finished(db, ticket, status)
    return status


def _observe_finished(db: DB, ticket: Ticket, status: str) -> None:
    started = ticket.claimed_at
    ended = db.scalar(select(TicketHistory.atime).where(TicketHistory.ticket_id == ticket.id)
                      .order_by(TicketHistory.id.desc()).limit(1))
    seconds = (ended - started).total_seconds() if started and ended else 0.0
    observe_ticket_finished(ticket.service_githash, status, seconds)
