"""/api/login and /api/token (spec c.1)."""
from __future__ import annotations

from flask import Blueprint, request

from .. import wire
from ..errors import Invalid, NotLoggedIn
from ..services import auth
from ._http import (
    accepts_json,
    commit_now,
    config,
    db,
    delete_session_cookie,
    identity,
    session_id,
    set_session_cookie,
    wants_json,
)

bp = Blueprint("auth", __name__)


@bp.get("/api/login")
def whoami():
    return wire.logged_in(identity().user.email, wants_json())


@bp.post("/api/login")
def login():
    # Every client sends the token in the body (protocol c.1): one in the URL would be written
    # to the access logs of this server and of every proxy on the way.
    if "token" in request.args:
        raise Invalid("Send the token in the request body (form field 'token'), not in "
                      "the URL, which ends up in logs")
    token = request.form.get("token")
    if not token or not token.strip():
        raise Invalid("Missing 'token' parameter")
    try:
        user, new_session_id = auth.login(db(), token, session_id())
    except NotLoggedIn:
        auth.logout(db(), session_id())
        commit_now()  # the 401 must not undo the logout
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
        raise NotLoggedIn("Unauthorized access")
    return wire.text(auth.issue_token(db(), who.user))
