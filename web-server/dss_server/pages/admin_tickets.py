"""/admin/tickets: every ticket with filters and pagination, a ticket's history, purge."""
from __future__ import annotations

from flask import abort, render_template, request, url_for

from ..api._http import config, db
from ..models import TICKET_STATUSES, Ticket
from ..services import files, purge, tickets
from . import queries
from ._web import attempt, page_blueprint, require_admin_page

bp = page_blueprint("admin_tickets", __name__, url_prefix="/admin/tickets")
bp.before_request(require_admin_page)


def _page_number(value: str | None) -> int:
    try:
        page = int(value or "1")
    except ValueError:
        abort(400, f"'page' must be a number, got {value!r}.")
    if not 0 < page < 2 ** 31:
        abort(400, "'page' must be 1 or more.")
    return page


@bp.get("")
def ticket_list():
    wanted = queries.TicketFilter.parse(request.args)
    page = _page_number(request.args.get("page"))
    rows, total = queries.admin_tickets(db(), wanted, page)
    pages = max(1, -(-total // queries.ADMIN_PAGE_SIZE))
    return render_template("admin/tickets.html", rows=rows, total=total, page=page, pages=pages,
                           wanted=wanted, filters=wanted.query_args(), statuses=TICKET_STATUSES,
                           services=queries.service_names(db()))


@bp.get("/<int:ticket_id>")
def history(ticket_id):
    ticket = db().get(Ticket, ticket_id) if 0 < ticket_id < 2 ** 31 else None
    if ticket is None:
        abort(404, f"No ticket {ticket_id}.")
    entries = tickets.log_entries(db(), ticket.id, 0)
    return render_template("admin/ticket.html", row=queries.ticket_row(db(), ticket),
                           history=queries.ticket_history(db(), ticket.id),
                           claims=queries.ticket_claims(db(), ticket.id), entries=entries,
                           attachments=tickets.attachments_of(db(), [e.id for e in entries]),
                           parameters=queries.shown_parameters(db(), ticket),
                           listing={area: files.listing(db(), ticket.id, area)
                                    for area in ("input", "results")})


@bp.post("/purge")
def purge_tickets():
    scope = request.form.get("scope", "completed")
    if scope not in purge.SCOPES:
        abort(400, f"Unknown purge scope {scope!r}; use completed or all.")
    days = request.form.get("days")
    return attempt(lambda: purge.purge(db(), config().datastore, scope,
                                       purge.interval(days, None)),
                   "Purged {result} tickets.", url_for("admin_tickets.ticket_list"))
