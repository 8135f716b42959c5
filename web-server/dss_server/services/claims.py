"""Claiming: the lowest-id ready ticket of the listed services, atomically, optionally waiting.

PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent claimers never take the same row
and never block each other. SQLite: every transaction is BEGIN IMMEDIATE (db.py), so the select
and the update run under the write lock.
"""
from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from .. import lifecycle
from ..errors import DSSError
from ..models import ClaimHistory, Ticket, utcnow
from . import catalog, leases, notify, tickets
from .access import require_provider
from .auth import Identity
from ..metrics import observe_claim


NAME_LENGTH = 78  # claim_history.provider / provider_code


def parse_services(value: str | None) -> list[str]:
    if not value or not value.strip():
        raise DSSError(400, "Missing 'services' parameter")
    githashes = [part.strip().lower() for part in value.split(",") if part.strip()]
    if not githashes:
        raise DSSError(400, "Missing 'services' parameter")
    return githashes


def parse_wait(value: str | None, cap: float) -> float:
    if value in (None, ""):
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        raise DSSError(400, f"Parameter 'wait' must be a number of seconds, got {value!r}") from None
    if seconds != seconds or seconds < 0:
        raise DSSError(400, f"Parameter 'wait' must be a number of seconds, got {value!r}")
    return min(seconds, cap)


def claim_once(db: DB, identity: Identity, githashes: list[str], provider: str, code: str,
               lease_seconds: float, max_attempts: int) -> Ticket | None:
    started = time.perf_counter()
    leases.sweep(db, lease_seconds, max_attempts)
    catalog.touch(db, githashes)
    ticket = db.scalar(select(Ticket).where(Ticket.status == "ready",
                                            Ticket.service_githash.in_(githashes))
                       .order_by(Ticket.id).limit(1).with_for_update(skip_locked=True))
    if ticket is None:
        return None
    claim = ClaimHistory(ticket_id=ticket.id, provider=provider, puser_id=identity.user.id,
                         provider_code=code, session_hash=identity.session_hash, atime=utcnow())
    db.add(claim)
    db.flush()
    tickets.change_status(db, ticket, "claim", {lifecycle.PROVIDER})
    ticket.claim_id, ticket.claimed_at, ticket.last_activity = claim.id, claim.atime, claim.atime
    ticket.attempts += 1
    tickets.append_log(db, ticket.id, "info",
                       f"Ticket claimed by provider {provider} instance {code}")
    observe_claim(time.perf_counter() - started)
    return ticket


def claim(db: DB, identity: Identity, githashes: list[str], provider: str | None,
          code: str | None, wait_seconds: float, lease_seconds: float,
          max_attempts: int) -> Ticket | None:
    """Claim now; with `wait_seconds` > 0 keep trying until a ticket is ready or time is up.

    Between attempts the transaction is committed, so a waiting claim holds no locks.
    """
    if not provider or not provider.strip():
        raise DSSError(400, "Missing 'provider' parameter")
    code = code.strip() if code and code.strip() else "default"
    if len(provider.strip()) > NAME_LENGTH or len(code) > NAME_LENGTH:
        raise DSSError(400, f"Parameters 'provider' and 'code' may have at most {NAME_LENGTH} characters")
    require_provider(db, identity, githashes)
    deadline = time.monotonic() + wait_seconds
    while True:
        seen = notify.generation()
        ticket = claim_once(db, identity, githashes, provider.strip(), code, lease_seconds,
                            max_attempts)
        remaining = deadline - time.monotonic()
        if ticket is not None or remaining <= 0:
            return ticket
        db.commit()
        notify.wait(seen, remaining)
