"""/admin/providers: create and retire providers, grant and revoke their users, register
services from a git repository and ref, retire services."""
from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, request, url_for

from ..api._http import config, db
from ..errors import DSSError
from ..models import Provider
from ..services import providers, registry
from . import queries
from ._web import attempt, page_blueprint, require_admin_page

bp = page_blueprint("admin_providers", __name__, url_prefix="/admin/providers")
bp.before_request(require_admin_page)


def _provider_or_404(name: str) -> Provider:
    provider = db().get(Provider, name)
    if provider is None:
        abort(404, f"No provider named {name}.")
    return provider


def _back(name: str) -> str:
    return url_for("admin_providers.provider_page", name=name)


@bp.get("")
def provider_list():
    return render_template("admin/providers.html", providers=queries.providers_overview(db()))


@bp.post("")
def create():
    name = (request.form.get("name") or "").strip()
    back = _back(name) if providers.PROVIDER_NAME.match(name) else url_for(
        "admin_providers.provider_list")
    return attempt(lambda: providers.add(db(), name), f"Provider {name} is ready.", back)


@bp.get("/<name>")
def provider_page(name):
    provider = _provider_or_404(name)
    return render_template("admin/provider.html", provider=provider,
                           users=providers.users(db(), name),
                           services=providers.services(db(), name))


@bp.post("/<name>/retire")
def retire(name):
    _provider_or_404(name)
    return attempt(lambda: providers.retire(db(), name),
                   f"Provider {name} and its services are retired.", _back(name))


@bp.post("/<name>/users")
def grant(name):
    _provider_or_404(name)
    email = request.form.get("email", "")
    admin = request.form.get("admin") == "on"
    return attempt(lambda: providers.grant(db(), name, email, admin),
                   "{result.email} may now serve tickets for " + name + ".", _back(name))


@bp.post("/<name>/token")
def provider_token(name):
    """A reusable token for a provider's daemon (DSS_PROVIDER_TOKEN), shown this once."""
    provider = _provider_or_404(name)
    try:
        user, token = providers.provider_token(db(), name, request.form.get("email", ""))
    except DSSError as exc:
        db().rollback()
        flash(exc.message, "error")
        return redirect(_back(name), code=303)
    response = make_response(render_template(
        "admin/provider.html", provider=provider, users=providers.users(db(), name),
        services=providers.services(db(), name), new_token=(user.email, token)))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<name>/users/<int:user_id>/revoke")
def revoke(name, user_id):
    _provider_or_404(name)
    return attempt(lambda: providers.revoke_existing(db(), name, str(user_id)),
                   "{result.email} may no longer serve tickets for " + name + ".", _back(name))


@bp.post("/<name>/services")
def register(name):
    _provider_or_404(name)
    repo = (request.form.get("repo") or "").strip()
    ref = (request.form.get("ref") or "").strip()
    if not repo:
        flash("Enter the git repository of the service.", "error")
        return redirect(_back(name), code=303)
    return attempt(lambda: registry.register(db(), config().datastore, name, repo, ref),
                   "Registered service {result}.", _back(name))


@bp.post("/<name>/services/<githash>/retire")
def retire_service(name, githash):
    _provider_or_404(name)
    return attempt(lambda: providers.retire_service(db(), name, githash),
                   f"Service {githash[:12]} retired.", _back(name))
