"""Claim leases: a claim without provider activity for DSS_CLAIM_LEASE s expires.

It goes back to `ready` while the ticket has attempts left (DSS_MAX_ATTEMPTS), else to
`timeout`; either way the claim is released, so writes from it are refused (fencing), and what
the lapsed attempt left (results, progress, attachments no log line took) is wiped.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import delete, select
from sqlalchemy.orm import Session as DB

from ..models import Ticket, TicketProgress, utcnow
from . import files, tickets


class ClaimPolicy(NamedTuple):
    """A claim lapses after `lease` s without provider activity; a ticket gets `max_attempts`
    claims; a lapsed attempt's files are wiped from `datastore`; claims take tickets in
    `order` (claims.CLAIM_ORDERS)."""
    lease: float
    max_attempts: int
    datastore: Path
    order: str = "fair"


def touch(ticket: Ticket) -> None:
    """Provider activity on the ticket renews its lease."""
    ticket.last_activity = utcnow()


def is_expired(ticket: Ticket, lease_seconds: float) -> bool:
    return (ticket.status == "claimed" and ticket.last_activity is not None
            and ticket.last_activity < utcnow() - timedelta(seconds=lease_seconds))


def expire(db: DB, ticket: Ticket, policy: ClaimPolicy) -> str:
    if ticket.attempts < policy.max_attempts:
        status = tickets.change_status(db, ticket, "lease_expired", {"system"})
        message = (f"No provider activity for {policy.lease:g} s: claim expired, ticket "
                   f"returned to the queue (attempt {ticket.attempts} of {policy.max_attempts} "
                   f"used)")
        category = "warning"
    else:
        status = tickets.change_status(db, ticket, "lease_exhausted", {"system"})
        message = (f"No provider activity for {policy.lease:g} s: claim expired after "
                   f"{ticket.attempts} attempts; ticket timed out")
        category = "error"
    tickets.release_claim(ticket)
    discard_attempt(db, policy.datastore, ticket.id)
    tickets.append_log(db, ticket.id, category, message)
    return status


def discard_attempt(db: DB, datastore: Path, ticket_id: int) -> None:
    """A claim ended without a final status (lapsed, or handed back): the next claimer starts
    as on a fresh ticket, and the user sees no half-made results nor a dead attempt's
    attachments (those no log line has taken yet) beside the next attempt's."""
    files.wipe_area(db, datastore, ticket_id, "results")
    files.drop_unlogged_attachments(db, datastore, ticket_id)
    db.execute(delete(TicketProgress).where(TicketProgress.ticket_id == ticket_id))


def sweep(db: DB, policy: ClaimPolicy) -> int:
    """Expire every overdue claim; concurrent sweepers skip each other's rows."""
    cutoff = utcnow() - timedelta(seconds=policy.lease)
    overdue = db.scalars(select(Ticket).where(Ticket.status == "claimed",
                                              Ticket.last_activity < cutoff)
                         .order_by(Ticket.id).with_for_update(skip_locked=True)).all()
    for ticket in overdue:
        expire(db, ticket, policy)
    return len(overdue)


def expire_if_overdue(db: DB, ticket: Ticket, policy: ClaimPolicy) -> None:
    if is_expired(ticket, policy.lease):
        expire(db, ticket, policy)
