"""The provider API (spec c.4, h.1): claim tickets, fetch inputs, report, deliver results."""
from __future__ import annotations

from contextlib import contextmanager

from flask import Blueprint

from .. import wire
from ..errors import Conflict, Invalid, NotFound
from ..models import LOG_CATEGORIES
from ..services import catalog, claims, files, leases, provider_tickets, release, tickets
from ..services.access import require_provider, service_provider_ticket
from ..throttle import Slots
from ._http import (
    autocommit_pool,
    claim_policy,
    client_gone,
    commit_now,
    config,
    db,
    download,
    identity,
    param,
    receive_upload,
    wants_json,
)

bp = Blueprint("provider", __name__)
_WAITS = Slots()


def _active(ticket_id: int):
    """The caller's claimed ticket. An overdue lease is expired first, in a unit of work of its
    own: the late write is refused with 409, and that answer must not undo the expiry."""
    who = identity()
    if provider_tickets.expire_overdue(db(), ticket_id, claim_policy()):
        commit_now()
    return provider_tickets.active_ticket(db(), who, ticket_id)


def _writable(ticket_id: int):
    return provider_tickets.require_writable(_active(ticket_id))


def _receive_while_claimed(ticket_id: int):
    """A provider's upload, renewing the claim four times a lease while its body arrives."""
    return receive_upload(lambda: _writable(ticket_id), renew_every=config().claim_lease / 4)


@contextmanager
def _wait_slot(who, seconds: float):
    """The seconds a claim may wait: a waiting claim holds a request thread, so beyond the
    process's share of them (DSS_CLAIM_WAITS) or the account's (DSS_CLAIM_WAITS_PER_ACCOUNT)
    it answers at once, as without `wait=`; health probes and other requests find a thread."""
    if not seconds:
        yield 0.0
        return
    cfg = config()
    with _WAITS.hold(who.user_id, cfg.claim_waits, cfg.claim_waits_per_account) as admitted:
        yield seconds if admitted else 0.0


@bp.get("/api/pro/services")
def services():
    rows = catalog.provider_services(db(), identity().user_id)
    return wire.table(("name", "version", "githash", "provider"), rows, wants_json())


@bp.post("/api/pro/services/claims")
def claim():
    who = identity()
    githashes = claims.parse_services(param("services"))
    with _wait_slot(who, claims.parse_wait(param("wait"), config().max_claim_wait)) as wait:
        ticket = claims.claim(db=db(), identity=who, githashes=githashes,
                              provider=param("provider"), code=param("code"), wait_seconds=wait,
                              policy=claim_policy(), pool=autocommit_pool(), commit=commit_now,
                              client_gone=client_gone)
    if ticket is None:
        return wire.none()
    return wire.table(("id", "service_githash", "status"),
                      [(ticket.id, ticket.service_githash, ticket.status)], wants_json())


@bp.post("/api/pro/services/<githash>/claims")
def claim_one(githash):
    ticket = claims.claim(db=db(), identity=identity(), githashes=[githash.lower()],
                          provider=param("provider"), code=param("code"), wait_seconds=0,
                          policy=claim_policy(), pool=autocommit_pool(), commit=commit_now)
    return wire.text(ticket.id if ticket else -1)


@bp.post("/api/pro/services/available")
def available():
    who = identity()
    githashes = claims.parse_services(param("services"))
    require_provider(db(), who, githashes)
    return wire.table(("service_githash", "service_name", "ready_tickets"),
                      catalog.available(db(), githashes), wants_json())


@bp.get("/api/pro/tickets/<int:ticket_id>/files/<area>")
def list_files(ticket_id, area):
    files.check_area(area)
    rows = files.listing(db(), _active(ticket_id).id, area)
    return wire.table(("index", "filename"), [(i, row.name) for i, row in enumerate(rows)],
                      wants_json())


@bp.post("/api/pro/tickets/<int:ticket_id>/files/<area>")
def upload(ticket_id, area):
    files.check_area(area)
    ticket, stream, name = _receive_while_claimed(ticket_id)
    files.store(db(), config().datastore, ticket.id, area, stream, name)
    return wire.text("success")


@bp.get("/api/pro/tickets/<int:ticket_id>/files/<area>/<index>")
def download_file(ticket_id, area, index):
    ticket = _active(ticket_id)
    path, row = files.indexed_file(db(), config().datastore, ticket.id, files.check_area(area),
                                   index)
    return download(path, row.name)


@bp.get("/api/pro/tickets/<int:ticket_id>/status")
def status(ticket_id):
    ticket = service_provider_ticket(db(), identity(), ticket_id)
    leases.expire_if_overdue(db(), ticket, claim_policy())
    if ticket.status == "claimed" and ticket.claim_id is not None:
        try:
            _active(ticket_id)  # the claimer asking renews its lease
        except (NotFound, Conflict):  # not its claim (any more): nothing to renew
            pass
    return wire.text(ticket.status)


@bp.get("/api/pro/tickets/<int:ticket_id>/parameters")
def parameters(ticket_id):
    """Our extension: the claimed ticket's parameter values, typed, as one JSON object."""
    return wire.raw_json(tickets.ticket_parameters(db(), _active(ticket_id)))


@bp.post("/api/pro/tickets/<int:ticket_id>/status")
def set_status(ticket_id):
    ticket = _active(ticket_id)
    return wire.text(provider_tickets.set_status(db(), ticket, param("status") or ""))


@bp.post("/api/pro/tickets/<int:ticket_id>/release")
def release_ticket(ticket_id):
    release.refuse_deleted(db(), identity(), ticket_id)
    ticket = _active(ticket_id)
    return wire.text(release.release(db(), config().datastore, ticket, param("message")))


@bp.post("/api/pro/tickets/<int:ticket_id>/attachments")
def attach(ticket_id):
    ticket, stream, name = _receive_while_claimed(ticket_id)
    description = param("desc")
    if not description:
        raise Invalid("Missing 'desc' parameter")
    return wire.text(files.store_attachment(db(), config().datastore, ticket.id, stream, name,
                                            description, param("mime_type") or None))


@bp.get("/api/pro/tickets/<int:ticket_id>/progress")
def progress(ticket_id):
    return wire.text(tickets.total_progress(db(), _active(ticket_id).id))


@bp.post("/api/pro/tickets/<int:ticket_id>/progress")
def set_progress(ticket_id):
    start = tickets.parse_fraction("chunk_start", param("chunk_start"))
    end = tickets.parse_fraction("chunk_end", param("chunk_end"))
    value = tickets.parse_fraction("progress", param("progress"))
    ticket = _writable(ticket_id)
    tickets.set_progress(db(), ticket.id, start, end, value)
    catalog.touch(db(), [ticket.service_githash])
    return wire.text("success")


@bp.post("/api/pro/tickets/<int:ticket_id>/<category>")
def append_log(ticket_id, category):
    if category not in LOG_CATEGORIES:
        raise Invalid(f"Unknown log category {category!r}: use info, warning or error")
    message = param("message")
    if message is None:
        raise Invalid("Missing 'message' parameter")
    ticket = _writable(ticket_id)
    return wire.text(tickets.append_log(db(), ticket.id, category, message))
