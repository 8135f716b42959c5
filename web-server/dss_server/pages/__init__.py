"""The browser pages (spec c.7): server-rendered templates over the core's service layer.

`init_app` registers the blueprints by area and the OIDC client; every form is CSRF-checked.
"""
from __future__ import annotations

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface

from ..api._http import API_PREFIX, config
from . import admin, admin_providers, admin_tickets, csrf, oidc, public, services, tickets, tokens
from ._web import current

BLUEPRINTS = (public.bp, oidc.bp, tokens.bp, services.bp, tickets.bp, admin.bp,
              admin_providers.bp, admin_tickets.bp)


def init_app(app: Flask) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    oidc.init_app(app)
    # The signed Flask session holds form tokens and sign-in state: never sent cross-site
    # except on top-level navigation (the OIDC provider's redirect back).
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.session_interface = _SessionCookie()
    app.jinja_env.filters["when"] = _when
    app.jinja_env.filters["size"] = human_size
    app.context_processor(_template_globals)


def _template_globals() -> dict:
    return {"csrf_token": csrf.token, "who": current(), "noauth": config().noauth}


def _when(value) -> str:
    """Stored times are naive UTC (models.utcnow): say so, a reader may be anywhere."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def human_size(size: int) -> str:
    """Bytes in decimal units, as file managers show them: `532 B`, `1.2 MB`."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


class _SessionCookie(SecureCookieSessionInterface):
    """Secure on https (directly or behind the proxy), as the `webpy_session_id` cookie is:
    the form token it carries must not travel over plain http. Only the pages use it: API
    requests skip reading and verifying it (which cost about a tenth of a claim's CPU)."""

    def open_session(self, app: Flask, request):
        if request.path.startswith(API_PREFIX):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)
