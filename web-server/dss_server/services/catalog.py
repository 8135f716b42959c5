"""Registered services as users and providers see them: list, detail, stats, availability."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session as DB

from ..errors import Invalid, ServiceNotFound
from ..models import ClaimHistory, ProviderAccess, ProviderService, Service, Ticket, TicketHistory, utcnow
from ..throttle import Throttle

GITHASH = re.compile(r"^[0-9a-f]{40}$")
PING_RESOLUTION = 5.0
_touch_throttle = Throttle(PING_RESOLUTION)


def current_services(db: DB) -> list[Service]:
    return list(db.scalars(select(Service).where(Service.current.is_(True)).order_by(Service.name)))


def by_githash(db: DB, githash: str) -> Service:
    service = db.get(Service, githash) if GITHASH.match(githash or "") else None
    if service is None:
        raise ServiceNotFound(f"Service {githash} is not available")
    return service


def version_key(version: str) -> tuple[int, int, int]:
    """First three dot-separated parts as integers; missing or non-numeric parts count 0."""
    parts = (version or "").split(".")[:3] + ["0"] * 3
    major, minor, patch = (int(p) if p.isdigit() else 0 for p in parts[:3])
    return major, minor, patch


def resolve(db: DB, githash: str | None, name: str | None) -> Service:
    """The service a new ticket is for: by githash, or by name at its highest version."""
    if githash:
        return by_githash(db, githash.strip().lower())
    if name:
        candidates = list(db.scalars(select(Service).where(Service.name == name)))
        if not candidates:
            raise ServiceNotFound(f"Unable to find service named {name}")
        return max(candidates, key=lambda s: version_key(s.version))
    raise Invalid("Unable to find service: neither name nor githash specified")


def provider_services(db: DB, user_id: int) -> list[tuple[str, str, str, str]]:
    """(name, version, githash, provider) rows the user may provide, current services only."""
    query = (select(Service.name, Service.version, Service.githash, ProviderService.provider_name)
             .join(ProviderService, ProviderService.service_githash == Service.githash)
             .join(ProviderAccess, ProviderAccess.provider == ProviderService.provider_name)
             .where(ProviderAccess.user_id == user_id, Service.current.is_(True),
                    ProviderService.current.is_(True))
             .order_by(Service.name, ProviderService.provider_name))
    return [(name, version, githash, provider) for name, version, githash, provider in db.execute(query)]


def touch(db: DB, githashes: list[str]) -> None:
    """Refresh `pingtime`: the provider is alive (the "alive" dot of /services).

    At most once per PING_RESOLUTION s, so concurrent claims do not queue on the service row.
    """
    stale = _touch_throttle.due(githashes)
    if stale:
        now = utcnow()
        db.execute(update(Service).where(Service.githash.in_(stale),
                                         Service.pingtime < now - timedelta(seconds=PING_RESOLUTION))
                   .values(pingtime=now))


def available(db: DB, githashes: list[str]) -> list[tuple[str, str, int]]:
    """(githash, name, ready count), ordered by each service's lowest ready ticket (spec h.1)."""
    touch(db, githashes)
    query = (select(Ticket.service_githash, Service.name, func.count(), func.min(Ticket.id))
             .join(Service, Service.githash == Ticket.service_githash)
             .where(Ticket.status == "ready", Ticket.service_githash.in_(githashes))
             .group_by(Ticket.service_githash, Service.name).order_by(func.min(Ticket.id)))
    return [(githash, name, count) for githash, name, count, _ in db.execute(query)]


def stats(db: DB, service: Service) -> dict:
    """Spec c.2 with SRV2's fixed key order; durations in seconds."""
    day_ago = utcnow() - timedelta(days=1)
    recent = (select(func.count()).select_from(TicketHistory)
              .join(Ticket, Ticket.id == TicketHistory.ticket_id)
              .where(Ticket.service_githash == service.githash, TicketHistory.atime >= day_ago))
    n_success = db.scalar(recent.where(TicketHistory.status == "success"))
    n_failed = db.scalar(recent.where(TicketHistory.status.in_(("failed", "timeout"))))
    result: dict[str, float | None] = {"n_success": n_success, "n_failed": n_failed}
    if n_success:
        result["avg_duration"] = _average_runtime(db, service.githash)
    result["last_heard_from"] = int((utcnow() - service.pingtime).total_seconds())
    result["queue_length"] = db.scalar(select(func.count()).select_from(Ticket).where(
        Ticket.service_githash == service.githash, Ticket.status == "ready"))
    return result


def _average_runtime(db: DB, githash: str) -> float:
    """Mean of (success time - latest claim time) over successful tickets of the service."""
    finished = (select(TicketHistory.ticket_id, func.max(TicketHistory.atime).label("end"))
                .join(Ticket, Ticket.id == TicketHistory.ticket_id)
                .where(Ticket.service_githash == githash, TicketHistory.status == "success")
                .group_by(TicketHistory.ticket_id).subquery())
    claimed = (select(ClaimHistory.ticket_id, func.max(ClaimHistory.atime).label("start"))
               .group_by(ClaimHistory.ticket_id).subquery())
    rows = db.execute(select(finished.c.end, claimed.c.start)
                      .join(claimed, claimed.c.ticket_id == finished.c.ticket_id)).all()
    runtimes = [(end - start).total_seconds() for end, start in rows if end and start]
    return round(sum(runtimes) / len(runtimes), 3) if runtimes else 0.0
