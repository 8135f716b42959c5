"""The admin API (spec c.6) plus POST /api/admin/tokens (our extension for provider tokens)."""
from __future__ import annotations

from flask import Blueprint

from .. import wire
from ..errors import Invalid
from ..services import auth, providers, purge, registry, tickets
from ._http import admin_identity, config, db, param, wants_json

bp = Blueprint("admin", __name__, url_prefix="/api/admin")


@bp.before_request
def _only_admins():
    admin_identity()


@bp.get("/providers")
def list_providers():
    return wire.table(("name",), [(name,) for name in providers.all_providers(db())],
                      wants_json())


@bp.post("/providers")
def add_provider():
    providers.add(db(), param("name"))
    return wire.text("success")


@bp.get("/providers/<provider>/delete")
def delete_provider(provider):
    providers.retire(db(), provider)
    return wire.none()


@bp.get("/providers/<provider>/users")
def provider_users(provider):
    return wire.table(("id", "email", "admin"), providers.users(db(), provider), wants_json())


@bp.post("/providers/<provider>/users")
def add_provider_user(provider):
    email = param("email") or ""
    admin = (param("admin") or "0").strip().lower() not in ("", "0", "false", "no")
    user = providers.grant(db(), provider, email, admin)
    return wire.text(f"Added user {user.email} to provider {provider}")


@bp.get("/providers/<provider>/users/<user_id>/delete")
def remove_provider_user(provider, user_id):
    providers.revoke(db(), provider, user_id)
    return wire.none()


@bp.get("/providers/<provider>/services")
def provider_services(provider):
    return wire.table(("name", "version", "githash", "shortdesc"),
                      providers.services(db(), provider), wants_json())


@bp.post("/providers/<provider>/services")
def register_service(provider):
    repo = param("repo")
    if not repo:
        raise Invalid("Missing 'repo' parameter")
    return wire.text(registry.register(db(), config().datastore, provider, repo,
                                       param("ref") or ""))


@bp.get("/providers/<provider>/services/<githash>/delete")
def retire_service(provider, githash):
    providers.retire_service(db(), provider, githash)
    return wire.text("success")


@bp.get("/tickets")
def list_tickets():
    return wire.table(("id", "email", "service", "status", "duration"),
                      tickets.admin_overview(db()), wants_json())


@bp.post("/tickets/purge/<scope>")
def purge_tickets(scope):
    interval = purge.interval(param("days"), param("hours"))
    count = purge.purge(db(), config().datastore, scope, interval)
    return wire.text(f"Purged {count} tickets")


@bp.post("/tokens")
def issue_token():
    email = param("email")
    if not email:
        raise Invalid("Missing 'email' parameter")
    reusable = (param("reusable") or "0").strip().lower() not in ("", "0", "false", "no")
    user = auth.ensure_user(db(), email)
    return wire.text(auth.issue_token(db(), user, reusable=reusable))
