"""Tickets on the consumer side (spec c.3)."""
from __future__ import annotations

from flask import Blueprint

from .. import wire
from ..errors import Conflict, LogEntryNotFound
from ..services import files, tickets
from ..services.access import parse_id, user_ticket
from ..services.tickets import consumer_actors
from ._http import config, db, download, identity, param, public_base, receive_upload, wants_json

bp = Blueprint("tickets", __name__)
LOG_COLUMNS = ("id", "atime", "category", "attachments", "message")
ATTACHMENT_COLUMNS = ("id", "description", "mime_type", "url")


def _ticket(ticket_id: int, for_update: bool = False):
    return user_ticket(db(), identity(), ticket_id, for_update)


@bp.get("/api/tickets")
def list_tickets():
    rows = tickets.list_tickets(db(), identity().user_id)  # the id alone: no ORM load of the user
    return wire.table(("id", "service", "status"), rows, wants_json())


@bp.get("/api/tickets/summary")
def summary():
    """Our extension: the list with the scan's name and creation time, as JSON."""
    return wire.raw_json(tickets.ticket_summaries(db(), identity().user))


@bp.post("/api/tickets")
def create():
    who = identity()
    return wire.text(tickets.create(db(), who, config().datastore, param("githash"), param("name")))


@bp.get("/api/tickets/<int:ticket_id>/files/<area>")
def list_files(ticket_id, area):
    ticket = _ticket(ticket_id)
    rows = files.listing(db(), ticket.id, files.check_area(area))
    return wire.table(("index", "filename"), [(i, row.name) for i, row in enumerate(rows)],
                      wants_json())


@bp.post("/api/tickets/<int:ticket_id>/files/<area>")
def upload(ticket_id, area):
    files.check_area(area)
    ticket, stream, name = receive_upload(lambda: _open_ticket(ticket_id))
    files.store(db(), config().datastore, ticket.id, area, stream, name)
    return wire.text("success")


def _open_ticket(ticket_id: int):
    """The ticket if the caller may add files now: the owner while init, an admin until deleted."""
    ticket = _ticket(ticket_id, for_update=True)
    if ticket.status == "deleted" or (ticket.status != "init" and not identity().sysadmin):
        raise Conflict(f"Ticket {ticket.id} is {ticket.status}: files can only be added "
                       f"while it is init")
    return ticket


@bp.get("/api/tickets/<int:ticket_id>/files/<area>/<index>")
def download_file(ticket_id, area, index):
    ticket = _ticket(ticket_id)
    path, row = files.indexed_file(db(), config().datastore, ticket.id, files.check_area(area),
                                   index)
    return download(path, row.name)


@bp.get("/api/tickets/<int:ticket_id>/status")
def status(ticket_id):
    return wire.text(_ticket(ticket_id).status)


@bp.post("/api/tickets/<int:ticket_id>/status")
def set_status(ticket_id):
    ticket = _ticket(ticket_id, for_update=True)
    return wire.text(tickets.mark_ready(db(), identity(), config().datastore, ticket,
                                        param("status") or ""))


@bp.get("/api/tickets/<int:ticket_id>/parameters")
def parameters(ticket_id):
    """Our extension: the ticket's parameter values, typed, as one JSON object."""
    return wire.raw_json(tickets.ticket_parameters(db(), _require_queued(_ticket(ticket_id))))


def _require_queued(ticket):
    if ticket.status == "init":
        raise Conflict(f"Ticket {ticket.id} is init: its parameters are read from its "
                       f"workspace when it is marked ready")
    return ticket


@bp.get("/api/tickets/<int:ticket_id>/progress")
def progress(ticket_id):
    return wire.text(tickets.total_progress(db(), _ticket(ticket_id).id))


@bp.get("/api/tickets/<int:ticket_id>/queuepos")
def queue_position(ticket_id):
    return wire.text(tickets.queue_position(db(), _ticket(ticket_id), same_service=True))


@bp.get("/api/tickets/<int:ticket_id>/log")
def log(ticket_id):
    ticket = _ticket(ticket_id)
    entries = tickets.log_entries(db(), ticket.id, tickets.parse_since(param("since")))
    attachments = tickets.attachments_of(db(), [entry.id for entry in entries])
    rows = [(e.id, e.atime, e.category, len(attachments[e.id]), e.message) for e in entries]
    return wire.table(LOG_COLUMNS, rows, wants_json())


@bp.get("/api/tickets/<int:ticket_id>/detail")
def detail(ticket_id):
    found = tickets.detail(db(), identity(), parse_id(ticket_id), tickets.parse_since(param("since")))
    result = {"status": found.status, "progress": found.progress}
    if found.queue_position is not None:
        result["queue_position"] = found.queue_position
    result["log"] = [{"id": e.id, "atime": wire.timestamp(e.atime), "category": e.category,
                      "message": e.message,
                      "attachments": [_attachment_json(a) for a in e.attachments]}
                     for e in found.log]
    return wire.json_response(result)


def _blob_url(attachment) -> str:
    return f"{public_base()}/blobs/{attachment.uuid[:8]}"


def _attachment_json(attachment) -> dict:
    return {"id": attachment.id, "description": attachment.description,
            "mime_type": attachment.mime_type, "url": _blob_url(attachment)}


@bp.get("/api/tickets/logs/<int:log_id>/attachments")
def log_attachments(log_id):
    who = identity()
    ticket = tickets.log_ticket(db(), log_id)
    if ticket is None or ticket.user_id != who.user_id:  # no admin bypass, as the original
        raise LogEntryNotFound(f"Log entry {log_id} is not readable by user {who.user_id}")
    found = tickets.attachments_of(db(), [log_id])[log_id]
    rows = [(a.id, a.description, a.mime_type, _blob_url(a)) for a in found]
    return wire.table(ATTACHMENT_COLUMNS, rows, wants_json())


@bp.get("/api/tickets/<int:ticket_id>/delete")
def delete(ticket_id):
    ticket = _ticket(ticket_id, for_update=True)
    return wire.text(tickets.delete_ticket(db(), ticket, consumer_actors(identity(), ticket),
                                           config().datastore))


@bp.get("/api/tickets/<int:ticket_id>/retry")
def retry(ticket_id):
    ticket = _ticket(ticket_id, for_update=True)
    return wire.text(tickets.retry(db(), identity(), config().datastore, ticket))
