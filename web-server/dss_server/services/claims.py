"""Claiming: a ready ticket of the listed services, fair share first, atomically, optionally waiting.

PostgreSQL: one statement picks with `SELECT ... FOR UPDATE SKIP LOCKED` (concurrent claimers
never take the same row and never block each other) and writes the claim, the ticket and its
history and log rows in data-modifying CTEs: one round trip, on a connection of the autocommit
pool (db.make_autocommit_engine, services/_autocommit.py), so with no BEGIN and COMMIT around it. SQLite: every
transaction is BEGIN IMMEDIATE (db.py), so the ORM's select and updates run under the write lock.
"""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import Callable, NamedTuple

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as DB
from sqlalchemy.types import String

from .. import lifecycle
from ..errors import Forbidden, Invalid
from ..metrics import observe_claim
from ..models import ClaimHistory, Provider, ProviderAccess, Ticket, TicketHistory, User, UserTier, utcnow
from ..throttle import Throttle
from . import catalog, leases, notify, tickets
from ._autocommit import Query, lend
from .access import not_a_provider, require_provider
from .auth import Identity

NAME_LENGTH = 78  # claim_history.provider / provider_code
CLAIMED = lifecycle.transition("ready", "claim", {lifecycle.PROVIDER})
# Overdue claims are swept at most once a second per process, and whenever the queue looks
# empty; the background sweeper and the late provider's own writes catch the rest.
SWEEP_INTERVAL = 1.0
_sweep_throttle = Throttle(SWEEP_INTERVAL)


class Claimed(NamedTuple):
    id: int
    service_githash: str
    status: str


# The claim order (DSS_CLAIM_ORDER). "fair": the ready ticket of the owner with the fewest
# tickets in flight (claimed, any service), then the earliest `waiting since`: the time the
# owner's next ticket (their lowest ready id) became ready, less their tier's priority_minutes
# (a poweruser's ticket ready at 10:40 goes before a guest's ready at 10:15: 9:40 vs 9:45),
# then the lowest id. "fifo": the lowest ready id (the order before fair share).
CLAIM_ORDERS = ("fair", "fifo")

# `allowed`: the listed services the user provides (access.require_provider's rule); nothing is
# taken unless that is all of them. `member`: the `current` of the provider named, if the user
# is one of its members (no row: not a member); nothing is taken unless it is true. The pick
# (`picked`, below) writes nothing itself; the CTEs after it take what it picked. The log row
# takes the ticket's attachments that no log row has yet, as tickets.append_log does.
_CLAIM_SQL = """
WITH RECURSIVE allowed AS (
    SELECT DISTINCT link.service_githash FROM provider_services link
    JOIN provider_access access ON access.provider = link.provider_name
    WHERE access.user_id = :user_id AND link.service_githash = ANY(:githashes)
), member AS (
    SELECT provider.current FROM provider_access access
    JOIN providers provider ON provider.name = access.provider
    WHERE access.user_id = :user_id AND access.provider = :provider
), {pick}, claim AS (
    INSERT INTO claim_history (ticket_id, provider, puser_id, provider_code, session_hash, atime)
    SELECT id, :provider, :user_id, :code, :session_hash, :now FROM picked
    RETURNING id, ticket_id
), taken AS (
    UPDATE tickets SET status = :claimed, claim_id = claim.id, claimed_at = :now,
                       last_activity = :now, attempts = tickets.attempts + 1
    FROM claim WHERE tickets.id = claim.ticket_id
    RETURNING tickets.id, tickets.service_githash, tickets.status
), history AS (
    INSERT INTO ticket_history (ticket_id, status, atime) SELECT id, status, :now FROM taken
), logged AS (
    INSERT INTO ticket_log (ticket_id, category, message, atime)
    SELECT id, 'info', :message, :now FROM taken
    RETURNING id, ticket_id
), linked AS (
    INSERT INTO ticket_log_attachment (log_id, attachment_id)
    SELECT logged.id, attachment.id FROM logged
    JOIN ticket_attachment attachment ON attachment.ticket_id = logged.ticket_id
    WHERE NOT EXISTS (SELECT 1 FROM ticket_log_attachment link
                      WHERE link.attachment_id = attachment.id)
)
SELECT (SELECT array_agg(service_githash) FROM allowed) AS allowed,
       (SELECT current FROM member) AS member, taken.id, taken.service_githash, taken.status
FROM (SELECT 1) AS one LEFT JOIN taken ON true
"""
_RIGHTS = "(SELECT count(*) FROM allowed) = :wanted AND (SELECT current FROM member)"
# fifo: the first ready ticket of each allowed service, at the head of its run in
# ix_tickets_ready, then the lowest of them (a single search over all the services' ready
# tickets would sort them all on every claim). The githash is matched as a range of one value,
# not with `=`: with `=` the planner counts it as a constant, drops it from the ORDER BY, and may
# walk the primary key past every claimed ticket (claimed tickets sit at the front of the table,
# which its statistics cannot tell); (service_githash, id) order only the partial index gives.
_FIFO_PICK = f"""picked AS (
    SELECT first.id FROM allowed, LATERAL (
        SELECT id FROM tickets
        WHERE status = 'ready' AND service_githash >= allowed.service_githash
          AND service_githash <= allowed.service_githash
        ORDER BY service_githash, id LIMIT 1 FOR UPDATE SKIP LOCKED) AS first
    WHERE {_RIGHTS}
    ORDER BY first.id LIMIT 1
)"""
# fair: `owners` skips through ix_tickets_ready_user, one probe per (service, owner) with ready
# tickets (however many tickets each has), giving each owner's lowest ready id. `flight` counts
# their claimed tickets, reading the tickets in flight once (ix_tickets_lease: as many as there
# are claimers at work, not the queue). `ranked` sorts the owners. `picked` then locks, in
# that order, the owner's first ready ticket nobody holds (SKIP LOCKED), so a ticket another
# claimer is taking passes the turn to that owner's next one, never to an empty answer; the
# LIMIT stops at the first owner that gives one, so one row is locked, not one per owner.
_FAIR_PICK = f"""owners AS (
    SELECT allowed.service_githash, head.user_id, head.id FROM allowed, LATERAL (
        SELECT user_id, id FROM tickets
        WHERE status = 'ready' AND service_githash >= allowed.service_githash
          AND service_githash <= allowed.service_githash
        ORDER BY service_githash, user_id, id LIMIT 1) AS head
    UNION ALL
    SELECT owners.service_githash, head.user_id, head.id FROM owners, LATERAL (
        SELECT user_id, id FROM tickets
        WHERE status = 'ready' AND service_githash >= owners.service_githash
          AND service_githash <= owners.service_githash AND user_id > owners.user_id
        ORDER BY service_githash, user_id, id LIMIT 1) AS head
), flight AS (
    SELECT user_id, count(*) AS tickets FROM tickets
    WHERE status = 'claimed' AND user_id IN (SELECT user_id FROM owners) GROUP BY user_id
), ranked AS (
    SELECT owners.service_githash, owners.user_id, owners.id,
           coalesce(flight.tickets, 0) AS in_flight,
           (SELECT max(history.atime) FROM ticket_history history
            WHERE history.ticket_id = owners.id AND history.status = 'ready')
           - make_interval(mins => tier.priority_minutes) AS since
    FROM owners JOIN users ON users.id = owners.user_id
    JOIN user_tiers tier ON tier.tier = users.tier
    LEFT JOIN flight ON flight.user_id = owners.user_id
    ORDER BY in_flight, since, owners.id
), picked AS (
    SELECT first.id FROM ranked, LATERAL (
        SELECT id FROM tickets
        WHERE status = 'ready' AND service_githash >= ranked.service_githash
          AND service_githash <= ranked.service_githash AND user_id = ranked.user_id
        ORDER BY service_githash, user_id, id LIMIT 1 FOR UPDATE SKIP LOCKED) AS first
    WHERE {_RIGHTS}
    ORDER BY ranked.in_flight, ranked.since, ranked.id LIMIT 1
)"""
# The statement's parameters, in the order of PREPARE's $1..$9.
_PARAMETERS = {"githashes": "text[]", "wanted": "bigint", "provider": "text", "code": "text",
               "user_id": "integer", "session_hash": "text", "now": "timestamp",
               "claimed": "text", "message": "text"}


def _numbered(sql: str) -> str:
    for number, name in enumerate(_PARAMETERS, start=1):
        sql = re.sub(rf":{name}\b", f"${number}", sql)
    return sql


class _Prepared(NamedTuple):
    """The claim statement of one order, PREPAREd per connection under `name`."""
    name: str
    prepare: str
    execute: Query


def _prepared(order: str, pick: str) -> _Prepared:
    name = f"dss_claim_{order}"
    prepare = (f"PREPARE {name} ({', '.join(_PARAMETERS.values())}) AS "
               + _numbered(_CLAIM_SQL.format(pick=pick)))
    execute = Query(text(f"EXECUTE {name} ({', '.join(':' + key for key in _PARAMETERS)})")
                    .bindparams(bindparam("githashes", type_=ARRAY(String))))
    return _Prepared(name, prepare, execute)


_STATEMENTS = {"fair": _prepared("fair", _FAIR_PICK), "fifo": _prepared("fifo", _FIFO_PICK)}


def parse_services(value: str | None) -> list[str]:
    if not value or not value.strip():
        raise Invalid("Missing 'services' parameter")
    githashes = [part.strip().lower() for part in value.split(",") if part.strip()]
    if not githashes:
        raise Invalid("Missing 'services' parameter")
    return githashes


def parse_wait(value: str | None, cap: float) -> float:
    if value in (None, ""):
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        raise Invalid(f"Parameter 'wait' must be a number of seconds, got {value!r}") from None
    if seconds != seconds or seconds < 0:
        raise Invalid(f"Parameter 'wait' must be a number of seconds, got {value!r}")
    return min(seconds, cap)


def _claim_once(db: DB, identity: Identity, githashes: list[str], provider: str, code: str,
                policy: leases.ClaimPolicy, pool: Engine | None,
                commit: Callable[[], None]) -> Claimed | None:
    started = time.perf_counter()
    if _sweep_throttle.due([str(db.get_bind().engine.url)]):
        leases.sweep(db, policy)
    catalog.touch(db, githashes)
    claimed = _take(db, identity, githashes, provider, code, policy.order, pool, commit)
    if claimed is None and leases.sweep(db, policy):
        claimed = _take(db, identity, githashes, provider, code, policy.order, pool, commit)
    if claimed is not None:
        observe_claim(time.perf_counter() - started)
    return claimed


def _take(db: DB, identity: Identity, githashes: list[str], provider: str, code: str,
          order: str, pool: Engine | None, commit: Callable[[], None]) -> Claimed | None:
    values = {"githashes": githashes, "wanted": len(set(githashes)),
              "provider": provider, "code": code,
              "user_id": identity.user_id, "session_hash": identity.session_hash,
              "now": utcnow(), "claimed": CLAIMED,
              "message": f"Ticket claimed by provider {provider} instance {code}"}
    if db.get_bind().dialect.name != "postgresql":
        require_provider(db, identity, githashes)
        _require_member(provider, _membership(db, identity, provider))
        return _take_with_orm(db, values, order)
    if db.in_transaction():
        commit()  # what the session did (a sweep) must be seen by the claim, and unlocked
    with lend(pool) as connection:
        allowed, member, *taken = _execute(db, connection, _STATEMENTS[order], values)
    for githash in githashes:
        if githash not in (allowed or ()):
            raise not_a_provider(githash)
    _require_member(provider, member)
    return Claimed(*taken) if taken[0] is not None else None


def _membership(db: DB, identity: Identity, provider: str) -> bool | None:
    """The `member` of the claim statement: the provider's `current` if the user is a member."""
    return db.scalar(select(Provider.current)
                     .join(ProviderAccess, ProviderAccess.provider == Provider.name)
                     .where(ProviderAccess.user_id == identity.user_id,
                            ProviderAccess.provider == provider))


def _require_member(provider: str, current: bool | None) -> None:
    """`provider` is recorded with the claim and shown to the user: it must be the caller's."""
    if current is None:
        raise Forbidden(f"You are not a member of provider {provider}")
    if not current:
        raise Forbidden(f"Provider {provider} is retired")


def _execute(db: DB, connection, statement: _Prepared, values: dict) -> tuple:
    """The claim statement on a pooled DBAPI connection, PREPAREd once per connection: planning
    it cost PostgreSQL more CPU than running it."""
    if not connection.info.get(statement.name):  # kept with the pooled connection
        with connection.cursor() as cursor:
            cursor.execute(statement.prepare)
        connection.info[statement.name] = True
    row = statement.execute.first(db, connection, values)
    assert row is not None  # its aggregates make the one row the caller unpacks
    return row


def _take_with_orm(db: DB, values: dict, order: str) -> Claimed | None:
    """SQLite: the PostgreSQL statement's order, under the write lock of BEGIN IMMEDIATE."""
    picked = _pick_fairly(db, values["githashes"]) if order == "fair" else db.scalar(
        select(func.min(Ticket.id)).where(Ticket.status == "ready",
                                          Ticket.service_githash.in_(values["githashes"])))
    if picked is None:
        return None
    ticket = db.get_one(Ticket, picked)
    claim = ClaimHistory(ticket_id=ticket.id, provider=values["provider"],
                         puser_id=values["user_id"], provider_code=values["code"],
                         session_hash=values["session_hash"], atime=values["now"])
    db.add(claim)
    db.flush()
    tickets.change_status(db, ticket, "claim", {lifecycle.PROVIDER})
    ticket.claim_id, ticket.claimed_at, ticket.last_activity = claim.id, claim.atime, claim.atime
    ticket.attempts += 1
    tickets.append_log(db, ticket.id, "info", values["message"])
    return Claimed(ticket.id, ticket.service_githash, ticket.status)


def _pick_fairly(db: DB, githashes: list[str]) -> int | None:
    """The id the fair statement's `ranked` puts first: each owner's lowest ready id, with the
    owner's tickets in flight, its ready time and the owner's tier's priority."""
    heads = (select(func.min(Ticket.id).label("id"), Ticket.user_id)
             .where(Ticket.status == "ready", Ticket.service_githash.in_(githashes))
             .group_by(Ticket.service_githash, Ticket.user_id).subquery())
    in_flight = (select(func.count()).where(Ticket.status == "claimed",
                                            Ticket.user_id == heads.c.user_id)
                 .scalar_subquery())
    since = (select(func.max(TicketHistory.atime))
             .where(TicketHistory.ticket_id == heads.c.id, TicketHistory.status == "ready")
             .scalar_subquery())
    rows = db.execute(select(heads.c.id, in_flight, since, UserTier.priority_minutes)
                      .join(User, User.id == heads.c.user_id)
                      .join(UserTier, UserTier.tier == User.tier)).all()
    return min(rows, key=_fair_key, default=(None,))[0]


def _fair_key(row) -> tuple:
    """PostgreSQL's ORDER BY in_flight, since, id: a missing ready time (NULL) sorts last."""
    ticket_id, in_flight, since, priority_minutes = row
    waited = datetime.max if since is None else since - timedelta(minutes=priority_minutes)
    return in_flight, waited, ticket_id


def claim(*, db: DB, identity: Identity, githashes: list[str], provider: str | None,
          code: str | None, wait_seconds: float, policy: leases.ClaimPolicy,
          pool: Engine | None, commit: Callable[[], None],
          client_gone: Callable[[], bool] = lambda: False) -> Claimed | None:
    """Claim now; with `wait_seconds` > 0 keep trying until a ticket is ready or time is up.

    On PostgreSQL the claim statement runs on a connection of the autocommit `pool`. `commit`
    ends the caller's unit of work in `db` where the claim needs it ended: before that
    statement, which must see what the session did (a sweep) and find it unlocked, and between
    attempts, so that a waiting claim holds no locks.

    A waiting claim ends with None when the process shuts down, or when `client_gone` says the
    caller hung up (a stopped dispatcher): a ticket claimed for nobody would stay claimed
    until its lease ran out.
    """
    if not provider or not provider.strip():
        raise Invalid("Missing 'provider' parameter")
    code = code.strip() if code and code.strip() else "default"
    if len(provider.strip()) > NAME_LENGTH or len(code) > NAME_LENGTH:
        raise Invalid(f"Parameters 'provider' and 'code' may have at most {NAME_LENGTH} characters")
    deadline = time.monotonic() + wait_seconds
    while True:
        seen = notify.generation()
        ticket = _claim_once(db, identity, githashes, provider.strip(), code, policy, pool, commit)
        remaining = deadline - time.monotonic()
        if ticket is not None or remaining <= 0:
            return ticket
        commit()
        notify.wait(seen, remaining)
        if notify.stopping() or client_gone():
            return None
