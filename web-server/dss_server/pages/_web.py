"""Request glue of the pages: who is signed in, access rules, HTML error pages, form actions."""
from __future__ import annotations

from functools import wraps

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from ..api._http import db, identity
from ..error_statuses import status_of
from ..errors import DSSError
from ..services.auth import Identity
from . import csrf


def page_blueprint(name: str, import_name: str, **options) -> Blueprint:
    """A blueprint whose POSTs need the CSRF token and whose errors are HTML pages."""
    bp = Blueprint(name, import_name, **options)
    bp.before_request(csrf.check)
    bp.after_request(_security_headers)
    bp.register_error_handler(DSSError, lambda exc: error_page(status_of(exc), exc.message))
    bp.register_error_handler(HTTPException,
                              lambda exc: error_page(exc.code or 500, exc.description))
    return bp


# Only this site's own scripts, styles and images; never inside another site's frame.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def error_page(status: int, message: str):
    db().rollback()
    return render_template("error.html", status=status, message=message), status


def current() -> Identity | None:
    """The signed-in identity (NOAUTH: the test admin), or None."""
    return identity(required=False)


def signed_in() -> Identity:
    """The identity of a view behind login_required or require_admin_page."""
    return identity()


def login_required(view):
    """Anonymous visitors go to the login page and come back afterwards."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if current() is None:
            return redirect(url_for("oidc.login_page", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)
    return wrapper


def require_admin_page():
    """before_request of the admin blueprints: anonymous -> login, non-admin -> 403."""
    who = current()
    if who is None:
        return redirect(url_for("oidc.login_page", next=request.full_path.rstrip("?")))
    if not who.sysadmin:
        abort(403, "This page is for administrators only.")
    return None


def attempt(action, success: str, back: str):
    """Run a form's action; flash its outcome (a DSSError's reason on failure) and go `back`."""
    try:
        result = action()
    except DSSError as exc:
        db().rollback()
        flash(exc.message, "error")
    else:
        flash(success.format(result=result), "ok")
    return redirect(back, code=303)
