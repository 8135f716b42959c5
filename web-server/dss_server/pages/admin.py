"""Admin dashboard (charts of the last days, queue depth) and users (admin flag, tier, quota)."""
from __future__ import annotations

from flask import render_template, request, url_for

from ..api._http import db
from . import charts, queries
from ._web import attempt, page_blueprint, require_admin_page, signed_in

bp = page_blueprint("admin_pages", __name__, url_prefix="/admin")
bp.before_request(require_admin_page)
DASHBOARD_HOURS = 72
RUNTIME_DAYS = 7


@bp.get("")
def dashboard():
    hours, counts = queries.tickets_per_hour(db(), DASHBOARD_HOURS)
    depth = queries.queue_depth(db())
    return render_template(
        "admin/dashboard.html", depth=depth,
        per_hour=charts.stacked_bars(hours, counts, "Tickets per hour by status"),
        runtimes=charts.box_plots(queries.runtimes_by_service(db(), RUNTIME_DAYS),
                                  "Run time per service"),
        queue=charts.horizontal_bars([(f"{name} {version}", ready)
                                      for name, version, ready, _ in depth], "Queued tickets"),
        hours=DASHBOARD_HOURS, days=RUNTIME_DAYS)


@bp.get("/users")
def users():
    return render_template("admin/users.html", users=queries.users_overview(db()),
                           tiers=queries.tiers(db()))


@bp.post("/users/<int:user_id>")
def update_user(user_id):
    sysadmin = request.form.get("sysadmin") == "on"
    tier = request.form.get("tier", "")
    return attempt(lambda: queries.update_user(db(), signed_in().user, user_id, sysadmin, tier),
                   "Saved {result.email}.", url_for("admin_pages.users"))


@bp.post("/users/<int:user_id>/quota")
def update_user_quota(user_id):
    return attempt(lambda: queries.set_user_quota(db(), user_id, request.form.get("max_tickets")),
                   "Saved the ticket quota of {result.email}.", url_for("admin_pages.users"))


@bp.post("/tiers/<tier>")
def update_tier(tier):
    return attempt(lambda: queries.set_tier_quota(db(), tier, request.form.get("max_tickets")),
                   "Tier {result.tier} now allows {result.max_tickets} open tickets.",
                   url_for("admin_pages.users"))
