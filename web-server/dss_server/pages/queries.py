"""Read and update queries the pages need beyond the core services (lists, filters, figures)."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB

from ..errors import Invalid, NotFound
from ..models import (
    TICKET_STATUSES,
    ClaimHistory,
    Provider,
    ProviderAccess,
    ProviderService,
    Service,
    Ticket,
    TicketHistory,
    User,
    UserTier,
    utcnow,
)
from ..services import tickets
from ..services.auth import Identity, make_admin, user_by_id

ADMIN_PAGE_SIZE = 50


@dataclass
class TicketRow:
    ticket: Ticket
    service: str
    email: str
    created: datetime | None
    updated: datetime | None
    progress: float
    queue_position: int | None


def _created_and_updated():
    return (select(TicketHistory.ticket_id, func.min(TicketHistory.atime).label("created"),
                   func.max(TicketHistory.atime).label("updated"))
            .group_by(TicketHistory.ticket_id).subquery())


def _ticket_rows(db: DB, query) -> list[TicketRow]:
    rows = []
    for ticket, service, email, created, updated in db.execute(query):
        position = (tickets.queue_position(db, ticket, same_service=False)
                    if ticket.status == "ready" else None)
        rows.append(TicketRow(ticket, service, email, created, updated,
                              tickets.displayed_progress(db, ticket), position))
    return rows


def _ticket_query():
    span = _created_and_updated()
    query = (select(Ticket, Service.name, User.email, span.c.created, span.c.updated)
             .join(Service, Service.githash == Ticket.service_githash)
             .join(User, User.id == Ticket.user_id)
             .join(span, span.c.ticket_id == Ticket.id, isouter=True))
    return query, span


def user_tickets(db: DB, user: User) -> list[TicketRow]:
    """The user's tickets, newest first, deleted ones left out."""
    query, _ = _ticket_query()
    query = query.where(Ticket.user_id == user.id, Ticket.status != "deleted")
    return _ticket_rows(db, query.order_by(Ticket.id.desc()))


def visible_ticket(db: DB, who: Identity, ticket_id: int) -> Ticket:
    """The ticket if the caller owns it (or is an admin) and it is not deleted; else 404."""
    ticket = db.get(Ticket, ticket_id) if 0 < ticket_id < 2 ** 31 else None
    if ticket is None or ticket.status == "deleted" or (
            ticket.user_id != who.user_id and not who.sysadmin):
        raise NotFound(f"Ticket {ticket_id} not found")
    return ticket


def shown(value) -> str:
    """A typed value as text: true/false and numbers as JSON writes them, text as it is."""
    return value if isinstance(value, str) else json.dumps(value)


def shown_parameters(db: DB, ticket: Ticket) -> dict[str, str]:
    """The ticket's parameter values as the ticket pages show them (none before ready)."""
    values = {} if ticket.status == "init" else tickets.ticket_parameters(db, ticket)
    return {name: shown(value) for name, value in values.items()}


def ticket_row(db: DB, ticket: Ticket) -> TicketRow:
    query, _ = _ticket_query()
    return _ticket_rows(db, query.where(Ticket.id == ticket.id))[0]


@dataclass
class TicketFilter:
    status: str = ""
    service: str = ""
    user: str = ""
    since: date | None = None
    until: date | None = None

    @classmethod
    def parse(cls, args) -> "TicketFilter":
        status = (args.get("status") or "").strip()
        if status and status not in TICKET_STATUSES:
            raise Invalid(f"Unknown ticket status {status!r}; use one of "
                          f"{', '.join(TICKET_STATUSES)}")
        return cls(status, (args.get("service") or "").strip(), (args.get("user") or "").strip(),
                   _parse_date(args.get("since"), "since"), _parse_date(args.get("until"), "until"))

    def query_args(self) -> dict[str, str]:
        """The filter as query parameters for the pager's links: only the filter's own keys, so
        a stray parameter can neither break url_for() (endpoint, _method) nor bend a link."""
        return {key: str(value) for key, value in vars(self).items() if value}


def _parse_date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(f"'{name}' must be a date like 2026-01-31, got {value!r}") from None


def admin_tickets(db: DB, wanted: TicketFilter, page: int) -> tuple[list[TicketRow], int]:
    """One page of all tickets matching the filter, newest first, and the number of matches."""
    query, span = _ticket_query()
    if wanted.status:
        query = query.where(Ticket.status == wanted.status)
    if wanted.service:
        query = query.where(Service.name == wanted.service)
    if wanted.user:
        query = query.where(User.email.ilike(f"%{_escape_like(wanted.user)}%", escape="\\"))
    if wanted.since:
        query = query.where(span.c.created >= datetime.combine(wanted.since, datetime.min.time()))
    if wanted.until and wanted.until < date.max:  # no day after date.max: no upper bound
        query = query.where(span.c.created < datetime.combine(wanted.until + timedelta(days=1),
                                                               datetime.min.time()))
    total = db.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    page_query = query.order_by(Ticket.id.desc()).limit(ADMIN_PAGE_SIZE) \
        .offset((page - 1) * ADMIN_PAGE_SIZE)
    return _ticket_rows(db, page_query), total


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def service_names(db: DB) -> list[str]:
    return list(db.scalars(select(Service.name).distinct().order_by(Service.name)))


def ticket_history(db: DB, ticket_id: int) -> list[TicketHistory]:
    return list(db.scalars(select(TicketHistory).where(TicketHistory.ticket_id == ticket_id)
                           .order_by(TicketHistory.id)))


def ticket_claims(db: DB, ticket_id: int) -> list[tuple[ClaimHistory, str]]:
    query = (select(ClaimHistory, User.email).join(User, User.id == ClaimHistory.puser_id)
             .where(ClaimHistory.ticket_id == ticket_id).order_by(ClaimHistory.id))
    return [(claim, email) for claim, email in db.execute(query)]


# --- dashboard figures -------------------------------------------------------------------

def tickets_per_hour(db: DB, hours: int) -> tuple[list[datetime], dict[str, list[int]]]:
    """Tickets per hour over the last `hours` hours, each under the last status it reached in
    that hour (a ticket created, run and finished within an hour is one ticket, not four status
    changes): (hour starts, counts per status)."""
    end = utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    last_status: dict[tuple[int, int], str] = {}
    query = (select(TicketHistory.ticket_id, TicketHistory.atime, TicketHistory.status)
             .where(TicketHistory.atime >= start)
             .order_by(TicketHistory.atime, TicketHistory.id))
    for ticket_id, atime, status in db.execute(query):
        last_status[ticket_id, int((atime - start).total_seconds() // 3600)] = status
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * hours)
    for (_, hour), status in last_status.items():
        counts[status][hour] += 1
    hour_starts = [start + timedelta(hours=i) for i in range(hours)]
    return hour_starts, {s: counts[s] for s in TICKET_STATUSES if s in counts}


def runtimes_by_service(db: DB, days: int) -> dict[str, list[float]]:
    """Seconds from the last claim to success, per service name, for successes in `days` days."""
    since = utcnow() - timedelta(days=days)
    finished = (select(TicketHistory.ticket_id, func.max(TicketHistory.atime).label("end"))
                .where(TicketHistory.status == "success", TicketHistory.atime >= since)
                .group_by(TicketHistory.ticket_id).subquery())
    claimed = (select(ClaimHistory.ticket_id, func.max(ClaimHistory.atime).label("start"))
               .group_by(ClaimHistory.ticket_id).subquery())
    query = (select(Service.name, finished.c.end, claimed.c.start)
             .join(Ticket, Ticket.id == finished.c.ticket_id)
             .join(claimed, claimed.c.ticket_id == finished.c.ticket_id)
             .join(Service, Service.githash == Ticket.service_githash))
    runtimes: dict[str, list[float]] = defaultdict(list)
    for name, end, start in db.execute(query):
        runtimes[name].append(max(0.0, (end - start).total_seconds()))
    return dict(sorted(runtimes.items()))


def queue_depth(db: DB) -> list[tuple[str, str, int, int]]:
    """(service name, version, ready, claimed) for every current service."""
    counts = (select(Ticket.service_githash,
                     func.count().filter(Ticket.status == "ready").label("ready"),
                     func.count().filter(Ticket.status == "claimed").label("claimed"))
              .group_by(Ticket.service_githash).subquery())
    query = (select(Service.name, Service.version, func.coalesce(counts.c.ready, 0),
                    func.coalesce(counts.c.claimed, 0))
             .join(counts, counts.c.service_githash == Service.githash, isouter=True)
             .where(Service.current.is_(True)).order_by(Service.name))
    return [tuple(row) for row in db.execute(query)]


# --- providers and users -----------------------------------------------------------------

def providers_overview(db: DB) -> list[tuple[Provider, int, int]]:
    """Every provider with its number of users and of current services, current ones first."""
    users = (select(func.count()).where(ProviderAccess.provider == Provider.name)
             .scalar_subquery())
    services = (select(func.count()).where(ProviderService.provider_name == Provider.name,
                                           ProviderService.current.is_(True)).scalar_subquery())
    query = select(Provider, users, services).order_by(Provider.current.desc(), Provider.name)
    return [tuple(row) for row in db.execute(query)]


def users_overview(db: DB) -> list[tuple[User, int, int]]:
    """Every user with their number of open (not deleted) tickets and their effective quota."""
    open_tickets = (select(func.count()).where(Ticket.user_id == User.id,
                                               Ticket.status != "deleted").scalar_subquery())
    quota = func.coalesce(User.max_tickets, UserTier.max_tickets, 0)
    query = (select(User, open_tickets, quota).join(UserTier, UserTier.tier == User.tier)
             .order_by(User.email))
    return [tuple(row) for row in db.execute(query)]


def tiers(db: DB) -> list[UserTier]:
    return list(db.scalars(select(UserTier).order_by(UserTier.max_tickets)))


def update_user(db: DB, acting: User, user_id: int, sysadmin: bool, tier: str) -> User:
    user = _existing_user(db, user_id)
    if db.get(UserTier, tier) is None:
        raise Invalid(f"Unknown tier {tier!r}")
    if user.id == acting.id and not sysadmin:
        raise Invalid("You cannot remove your own admin rights; ask another admin")
    if sysadmin:
        make_admin(db, user)
    else:
        user.sysadmin = False
    user.tier = tier
    db.flush()
    return user


def set_tier_quota(db: DB, tier: str, max_tickets: str | None) -> UserTier:
    row = db.get(UserTier, tier)
    if row is None:
        raise NotFound(f"Tier {tier!r} not found")
    row.max_tickets = _parse_quota(max_tickets)
    db.flush()
    return row


def set_user_quota(db: DB, user_id: int, max_tickets: str | None) -> User:
    """Override the user's ticket quota; an empty value goes back to the tier's quota."""
    user = _existing_user(db, user_id)
    user.max_tickets = _parse_quota(max_tickets) if (max_tickets or "").strip() else None
    db.flush()
    return user


def _existing_user(db: DB, user_id: int) -> User:
    user = user_by_id(db, user_id)
    if user is None:
        raise NotFound(f"User {user_id} not found")
    return user


def _parse_quota(max_tickets: str | None) -> int:
    try:
        quota = int(max_tickets or "")
    except ValueError:
        raise Invalid(f"The ticket quota must be a whole number, got {max_tickets!r}") \
            from None
    if not 0 <= quota < 2 ** 31:
        raise Invalid(f"The ticket quota must be between 0 and {2 ** 31 - 1}")
    return quota
