"""/api/login and /api/token (spec c.1)."""
from __future__ import annotations

from flask import Blueprint

from .. import wire
from ..errors import DSSError
from ..services import auth
from ._http import (accepts_json, config, db, delete_session_cookie, identity, param,
                    session_id, set_session_cookie, wants_json)

bp = Blueprint("auth", __name__)


@bp.get("/api/login")
def whoami():
    return wire.logged_in(identity().user.email, wants_json())


@bp.post("/api/login")
def login():
    token = param("token")
    if not token or not token.strip():
        raise DSSError(400, "Missing 'token' parameter")
    try:
        user, new_session_id = auth.login(db(), token, session_id())
    except DSSError:
        auth.logout(db(), session_id())
        db().commit()
        response = wire.error(401, "unauthorized", accepts_json())
        delete_session_cookie(response)
        return response
    response = wire.logged_in(user.email, wants_json())
    set_session_cookie(response, new_session_id)
    return response


@bp.get("/api/token")
def token():
    who = identity(required=False)
    if who is None or not (who.accept_terms or config().noauth):
        raise DSSError(401, "Unauthorized access")
    return wire.text(auth.issue_token(db(), who.user))
