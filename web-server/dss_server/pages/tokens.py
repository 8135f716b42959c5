"""/token: terms of use, then a login token to paste into ITK-SNAP (its "Get Token" button).

Tokens are stored hashed, so a token is shown once, when it is issued (a POST); issuing one
invalidates the previous login token.
"""
from __future__ import annotations

from flask import flash, make_response, redirect, render_template, request, url_for

from ..api._http import db, session_id
from ..services import auth
from ._web import login_required, page_blueprint, signed_in

bp = page_blueprint("tokens", __name__)


@bp.get("/token")
@login_required
def token_page():
    who = signed_in()
    template = "token.html" if who.accept_terms else "terms.html"
    return render_template(template, token=None)


@bp.post("/acceptterms")
@login_required
def accept_terms():
    accepted = request.form.get("cb") == "on"
    auth.set_accept_terms(db(), session_id(), accepted)
    if not accepted:
        flash("You need to accept the terms of use to get a token.", "error")
    return redirect(url_for("tokens.token_page"), code=303)


@bp.post("/token")
@login_required
def issue():
    who = signed_in()
    if not who.accept_terms:
        return redirect(url_for("tokens.token_page"), code=303)
    token = auth.issue_token(db(), who.user)
    response = make_response(render_template("token.html", token=token))
    response.headers["Cache-Control"] = "no-store"  # the token must not stay in a cache
    return response
