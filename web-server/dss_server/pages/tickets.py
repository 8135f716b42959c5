"""/tickets: the user's tickets with progress and queue position; a ticket's log, files, actions.

Other users' tickets answer 404 (admins see every ticket).
"""
from __future__ import annotations

from flask import render_template, url_for

from ..api._http import config, db, download
from ..services import files, tickets
from ..services.tickets import consumer_actors
from . import queries
from ._web import attempt, login_required, page_blueprint, signed_in

bp = page_blueprint("tickets_page", __name__)
LIVE_STATUSES = ("init", "ready", "claimed")
REFRESH_SECONDS = 5


@bp.get("/tickets")
@login_required
def ticket_list():
    rows = queries.user_tickets(db(), signed_in().user)
    refresh = REFRESH_SECONDS if any(r.ticket.status in LIVE_STATUSES for r in rows) else None
    return render_template("tickets.html", rows=rows, refresh=refresh)


@bp.get("/tickets/<int:ticket_id>")
@login_required
def ticket_page(ticket_id):
    ticket = queries.visible_ticket(db(), signed_in(), ticket_id)
    entries = tickets.log_entries(db(), ticket.id, 0)
    attachments = tickets.attachments_of(db(), [entry.id for entry in entries])
    listing = {area: files.listing(db(), ticket.id, area) for area in ("input", "results")}
    refresh = REFRESH_SECONDS if ticket.status in LIVE_STATUSES else None
    return render_template("ticket.html", row=queries.ticket_row(db(), ticket), entries=entries,
                           attachments=attachments, listing=listing, refresh=refresh,
                           parameters=queries.shown_parameters(db(), ticket))


@bp.get("/tickets/<int:ticket_id>/files/<area>/<int:index>")
@login_required
def download_file(ticket_id, area, index):
    ticket = queries.visible_ticket(db(), signed_in(), ticket_id)
    path, row = files.indexed_file(db(), config().datastore, ticket.id, files.check_area(area),
                                   str(index))
    return download(path, row.name)


@bp.post("/tickets/<int:ticket_id>/retry")
@login_required
def retry(ticket_id):
    ticket = queries.visible_ticket(db(), signed_in(), ticket_id)
    return attempt(lambda: tickets.retry(db(), signed_in(), config().datastore, ticket),
                   f"Ticket {ticket_id} is queued again.",
                   url_for("tickets_page.ticket_page", ticket_id=ticket_id))


@bp.post("/tickets/<int:ticket_id>/delete")
@login_required
def delete(ticket_id):
    ticket = queries.visible_ticket(db(), signed_in(), ticket_id)
    actors = consumer_actors(signed_in(), ticket)
    return attempt(lambda: tickets.delete_ticket(db(), ticket, actors, config().datastore),
                   f"Ticket {ticket_id} is deleted.", url_for("tickets_page.ticket_list"))
