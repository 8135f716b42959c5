"""CSRF protection of every page form: a random token kept in the signed Flask session.

Forms carry it in the hidden field `csrf_token`; a POST without the session's token is refused.
"""
from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

FIELD = "csrf_token"


def token() -> str:
    """The session's token, made on first use (templates call it as `csrf_token()`)."""
    if FIELD not in session:
        session[FIELD] = secrets.token_urlsafe(32)
    return session[FIELD]


def check() -> None:
    """before_request hook of the page blueprints: POSTs must echo the session's token."""
    if request.method != "POST":
        return
    expected = session.get(FIELD)
    sent = request.form.get(FIELD, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, "The form has expired or did not come from this site (CSRF check failed): "
                   "reload the page and try again.")
