"""Claim leases: a claim without provider activity for DSS_CLAIM_LEASE s expires.

It goes back to `ready` while the ticket has attempts left (DSS_MAX_ATTEMPTS), else to
`timeout`; either way the claim is released, so writes from it are refused (fencing).
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ..models import Ticket, utcnow
from . import tickets


def touch(ticket: Ticket) -> None:
    """Provider activity on the ticket renews its lease."""
    ticket.last_activity = utcnow()


def is_expired(ticket: Ticket, lease_seconds: float) -> bool:
    return (ticket.status == "claimed" and ticket.last_activity is not None
            and ticket.last_activity < utcnow() - timedelta(seconds=lease_seconds))


def expire(db: DB, ticket: Ticket, lease_seconds: float, max_attempts: int) -> str:
    if ticket.attempts < max_attempts:
        status = tickets.change_status(db, ticket, "lease_expired", {"system"})
        message = (f"No provider activity for {lease_seconds:g} s: claim expired, ticket "
                   f"returned to the queue (attempt {ticket.attempts} of {max_attempts} used)")
        category = "warning"
    else:
        status = tickets.change_status(db, ticket, "lease_exhausted", {"system"})
        message = (f"No provider activity for {lease_seconds:g} s: claim expired after "
                   f"{ticket.attempts} attempts; ticket timed out")
        category = "error"
    tickets.release_claim(ticket)
    tickets.append_log(db, ticket.id, category, message)
    return status


def sweep(db: DB, lease_seconds: float, max_attempts: int) -> int:
    """Expire every overdue claim; concurrent sweepers skip each other's rows."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    overdue = db.scalars(select(Ticket).where(Ticket.status == "claimed",
                                              Ticket.last_activity < cutoff)
                         .order_by(Ticket.id).with_for_update(skip_locked=True)).all()
    for ticket in overdue:
        expire(db, ticket, lease_seconds, max_attempts)
    return len(overdue)


def expire_if_overdue(db: DB, ticket: Ticket, lease_seconds: float, max_attempts: int) -> None:
    if is_expired(ticket, lease_seconds):
        expire(db, ticket, lease_seconds, max_attempts)
