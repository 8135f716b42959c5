"""Who may touch which ticket: owners and admins (consumer side), the current claimer (provider)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ..errors import Conflict, Forbidden, Invalid, NotAdmin, TicketNotFound
from ..models import ClaimHistory, ProviderAccess, ProviderService, Ticket
from .auth import Identity


def require_admin(identity: Identity) -> None:
    if not identity.sysadmin:
        raise NotAdmin()


def parse_id(value: str | int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise Invalid(f"Not a ticket id: {value!r}") from None
    if not 0 < number < 2 ** 31:
        raise Invalid(f"Not a ticket id: {value!r}")
    return number


def user_ticket(db: DB, identity: Identity, ticket_id: int | str, for_update: bool = False) -> Ticket:
    """The ticket if the caller owns it or is an admin; else TicketNotFound (the original's 400)."""
    ticket_id = parse_id(ticket_id)
    query = select(Ticket).where(Ticket.id == ticket_id)
    if for_update:
        query = query.with_for_update()
    ticket = db.scalar(query)
    if ticket is None or not may_read(identity, ticket.user_id):
        raise ticket_not_found(identity, ticket_id)
    return ticket


def may_read(identity: Identity, owner_id: int) -> bool:
    """Owners and admins read a ticket; to anyone else it does not exist."""
    return owner_id == identity.user_id or identity.sysadmin


def ticket_not_found(identity: Identity, ticket_id: int) -> TicketNotFound:
    return TicketNotFound(f"Ticket {ticket_id} not found for user {identity.user_id}")


def provides_service(db: DB, identity: Identity, githash: str) -> bool:
    query = (select(ProviderService.service_githash)
             .join(ProviderAccess, ProviderAccess.provider == ProviderService.provider_name)
             .where(ProviderAccess.user_id == identity.user_id,
                    ProviderService.service_githash == githash))
    return db.scalar(query.limit(1)) is not None


def require_provider(db: DB, identity: Identity, githashes: list[str]) -> None:
    for githash in githashes:
        if not provides_service(db, identity, githash):
            raise not_a_provider(githash)


def not_a_provider(githash: str) -> Forbidden:
    return Forbidden(f"You are not a provider for service {githash} ")


def claimed_ticket(db: DB, identity: Identity, ticket_id: int | str) -> Ticket:
    """The ticket if the caller's claim is its current one (fencing of stale claims)."""
    ticket_id = parse_id(ticket_id)
    ticket = db.scalar(select(Ticket).where(Ticket.id == ticket_id).with_for_update())
    uid = identity.user_id
    if ticket is None or not _ever_claimed_by(db, ticket_id, uid):
        raise TicketNotFound(f"Ticket {ticket_id} has not been claimed by user {uid}")
    if ticket.status == "deleted":
        raise TicketNotFound(f"Ticket {ticket_id} has been deleted ")
    claim = db.get(ClaimHistory, ticket.claim_id) if ticket.claim_id else None
    if claim is None or not _same_claimer(claim, identity):
        raise Conflict(f"Ticket {ticket_id} is no longer claimed by this provider session "
                       f"(its claim expired or it was requeued; status is {ticket.status})")
    return ticket


def _ever_claimed_by(db: DB, ticket_id: int, user_id: int) -> bool:
    return db.scalar(select(ClaimHistory.id).where(ClaimHistory.ticket_id == ticket_id,
                                                   ClaimHistory.puser_id == user_id)
                     .limit(1)) is not None


def _same_claimer(claim: ClaimHistory, identity: Identity) -> bool:
    if claim.puser_id != identity.user_id:
        return False
    # A claim made with a cookie is fenced to that session; a cookieless NOAUTH one to the user.
    return claim.session_hash is None or claim.session_hash == identity.session_hash


def service_provider_ticket(db: DB, identity: Identity, ticket_id: int | str) -> Ticket:
    """For the provider status GET: any provider of the ticket's service may read it."""
    ticket_id = parse_id(ticket_id)
    ticket = db.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketNotFound(f"Ticket {ticket_id} not found")
    require_provider(db, identity, [ticket.service_githash])
    return ticket
