"""Admin purge (spec c.6): delete tickets created longer ago than an interval."""
from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from .. import lifecycle
from ..errors import Invalid, NotFound
from ..models import Ticket, TicketHistory, utcnow
from . import tickets

SCOPES = {"completed": ("failed", "success", "timeout"),
          "all": ("failed", "success", "timeout", "init", "ready", "claimed")}
MAX_INTERVAL_DAYS = 36525  # 100 years: older than any ticket; now minus it is still a date


def interval(days: str | None, hours: str | None) -> timedelta:
    """The purge's age limit from form `days` or else `hours`; 7 days when neither is given."""
    if days not in (None, ""):
        amount = _number(days)
    elif hours not in (None, ""):
        amount = _number(hours) / 24
    else:
        amount = 7
    if amount < 0:
        raise Invalid("The purge interval must not be negative")
    if amount > MAX_INTERVAL_DAYS:
        raise Invalid(f"The purge interval must be at most {MAX_INTERVAL_DAYS} days "
                      "(100 years)")
    return timedelta(days=amount)


def _number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise Invalid("Parameters 'days' and 'hours' must be numbers")
    return number


def purge(db: DB, datastore: Path, scope: str, older_than: timedelta) -> int:
    if scope not in SCOPES:
        raise NotFound("not found")
    cutoff = utcnow() - older_than
    created = (select(TicketHistory.ticket_id).where(TicketHistory.status == "init",
                                                     TicketHistory.atime < cutoff))
    doomed = db.scalars(select(Ticket).where(Ticket.status.in_(SCOPES[scope]),
                                             Ticket.id.in_(created)).with_for_update()).all()
    for ticket in doomed:
        tickets.delete_ticket(db, ticket, {lifecycle.ADMIN}, datastore)
    return len(doomed)
