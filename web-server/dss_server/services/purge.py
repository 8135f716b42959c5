"""Admin purge (spec c.6): delete tickets created longer ago than an interval."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from .. import lifecycle
from ..errors import DSSError
from ..models import Ticket, TicketHistory, utcnow
from . import tickets

SCOPES = {"completed": ("failed", "success", "timeout"),
          "all": ("failed", "success", "timeout", "init", "ready", "claimed")}


def interval(days: str | None, hours: str | None) -> timedelta:
    try:
        if days not in (None, ""):
            value = timedelta(days=float(days))
        elif hours not in (None, ""):
            value = timedelta(hours=float(hours))
        else:
            value = timedelta(days=7)
    except (ValueError, OverflowError):
        raise DSSError(400, "Parameters 'days' and 'hours' must be numbers") from None
    if value < timedelta(0):
        raise DSSError(400, "The purge interval must not be negative")
    return value


def purge(db: DB, datastore: Path, scope: str, older_than: timedelta) -> int:
    if scope not in SCOPES:
        raise DSSError(404, "not found")
    cutoff = utcnow() - older_than
    created = (select(TicketHistory.ticket_id).where(TicketHistory.status == "init",
                                                     TicketHistory.atime < cutoff))
    doomed = db.scalars(select(Ticket).where(Ticket.status.in_(SCOPES[scope]),
                                             Ticket.id.in_(created)).with_for_update()).all()
    for ticket in doomed:
        tickets.delete_ticket(db, ticket, {lifecycle.ADMIN}, datastore)
    return len(doomed)
