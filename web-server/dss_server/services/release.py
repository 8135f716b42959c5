"""A provider hands its claimed ticket back to the queue (our extension of the protocol).

Used by a dispatcher that is shutting down: the ticket is `ready` again at once instead of after
the claim lease. A release is not a failed attempt, so the attempt is given back (a rolling
restart must not push tickets towards `timeout`). The released attempt's results, progress and
unlogged attachments are wiped, so the next claimer starts as on a fresh ticket.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session as DB

from .. import lifecycle
from ..errors import Invalid
from ..models import ClaimHistory, Ticket
from . import leases, tickets
from .access import parse_id, provides_service
from .auth import Identity

MAX_MESSAGE = 1000  # characters: a reason for the log, not a report


def refuse_deleted(db: DB, identity: Identity, ticket_id) -> None:
    """A deleted ticket is terminal like the others: 409 with the reason (other provider writes
    answer the original's 400 `has been deleted`)."""
    ticket = db.get(Ticket, parse_id(ticket_id))
    if ticket is not None and ticket.status == "deleted" and \
            provides_service(db, identity, ticket.service_githash):
        tickets.change_status(db, ticket, "release", {lifecycle.PROVIDER})  # raises the 409


def release(db: DB, datastore: Path, ticket: Ticket, message: str | None) -> str:
    """claimed -> ready for the session holding the claim (the caller fenced it); 409 otherwise."""
    message = (message or "").strip()
    if len(message) > MAX_MESSAGE:
        raise Invalid(f"Parameter 'message' may have at most {MAX_MESSAGE} characters")
    claim = db.get(ClaimHistory, ticket.claim_id) if ticket.claim_id else None
    status = tickets.change_status(db, ticket, "release", {lifecycle.PROVIDER})
    tickets.release_claim(ticket)
    ticket.attempts = max(0, ticket.attempts - 1)
    leases.discard_attempt(db, datastore, ticket.id)
    provider = claim.provider if claim else "(unknown)"
    reason = f" ({message})" if message else ""
    tickets.append_log(db, ticket.id, "info",
                       f"Released by provider {provider}{reason}; back in the queue")
    return status
