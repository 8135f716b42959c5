"""Sign-in: OpenID Connect through authlib's Flask client, or a DSS login token; sign-out.

authlib reads the provider's discovery document (DSS_OIDC_ISSUER), keeps state, nonce and the
PKCE verifier in the signed Flask session and verifies the id_token's signature (JWKS), issuer,
audience, expiry and nonce. Only a verified email address signs in (and with
DSS_OIDC_ALLOWED_DOMAINS, one at those domains); the first sign-in creates the user. Signing in
gives the browser a fresh `webpy_session_id`, the same session the DSS API uses.
"""
from __future__ import annotations

import logging

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import current_app, flash, redirect, render_template, request, session, url_for
from joserfc.errors import JoseError

from ..api._http import config, db, delete_session_cookie, session_id, set_session_cookie
from ..config import ConfigError
from ..errors import NotLoggedIn
from ..services import auth
from ._web import current, error_page, page_blueprint

log = logging.getLogger(__name__)
bp = page_blueprint("oidc", __name__)
DISCOVERY_PATH = "/.well-known/openid-configuration"
NEXT_KEY = "login_next"
PROVIDER_TIMEOUT = 10  # seconds per request to the provider: a hung one must not hang a worker


def init_app(app) -> None:
    """Register the OIDC client when DSS_OIDC_ISSUER is set."""
    settings = app.config["DSS"]
    if not settings.oidc_issuer:
        return
    if not settings.oidc_client_id:
        raise ConfigError("DSS_OIDC_ISSUER is set but DSS_OIDC_CLIENT_ID is not: set both (and "
                          "DSS_OIDC_CLIENT_SECRET) to the client registered at the provider.")
    oauth = OAuth(app)
    oauth.register("oidc", client_id=settings.oidc_client_id,
                   client_secret=settings.oidc_client_secret,
                   server_metadata_url=discovery_url(settings.oidc_issuer),
                   client_kwargs={"scope": "openid email profile",
                                  "code_challenge_method": "S256",  # PKCE
                                  "default_timeout": PROVIDER_TIMEOUT})
    app.extensions["dss_oidc"] = oauth.oidc


def discovery_url(issuer: str) -> str:
    """The issuer URL or its discovery document's URL; either may be configured."""
    issuer = issuer.rstrip("/")
    return issuer if issuer.endswith(DISCOVERY_PATH) else issuer + DISCOVERY_PATH


def _client():
    return current_app.extensions.get("dss_oidc")


def safe_next(target: str | None) -> str:
    """Only paths on this site: no scheme, no host, no `//evil.example`. Browsers drop tabs and
    newlines from a Location (slash, tab, slash is `//`), and a newline would break the header:
    any whitespace or control character is refused."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(char.isspace() or not char.isprintable() for char in target)):
        return url_for("public.home")
    return target


@bp.get("/login")
def login_page():
    target = safe_next(request.args.get("next"))
    if current() is not None:
        return redirect(target)
    return render_template("login.html", next=target, oidc=_client() is not None)


@bp.get("/login/oidc")
def start():
    client = _client()
    if client is None:
        return error_page(404, "Single sign-on is not configured on this server "
                               "(DSS_OIDC_ISSUER is not set).")
    session[NEXT_KEY] = safe_next(request.args.get("next"))
    try:
        return client.authorize_redirect(url_for("oidc.callback", _external=True))
    except (requests.RequestException, ValueError, KeyError) as exc:
        log.warning("OIDC discovery failed: %s", exc)
        return error_page(502, "The sign-in provider cannot be reached; try again later.")
    except RuntimeError as exc:  # authlib: the discovery document lacks an endpoint
        log.error("OIDC provider unusable: %s", exc)
        return error_page(502, "The sign-in provider's configuration is unusable (its discovery "
                               "document names no authorization endpoint); tell your "
                               "administrator.")


@bp.get("/login/callback")
def callback():
    client = _client()
    if client is None:
        return error_page(404, "Single sign-on is not configured on this server.")
    try:
        token = client.authorize_access_token()
    except (AuthlibBaseError, JoseError, requests.RequestException, ValueError) as exc:
        log.warning("OIDC sign-in refused: %s: %s", type(exc).__name__, exc)
        return error_page(401, "Sign-in failed: the identity provider's answer could not be "
                               "verified. Please try again.")
    claims = token.get("userinfo")
    if not claims:
        return error_page(401, "Sign-in failed: the identity provider sent no id_token.")
    email = claims.get("email")
    if not email:
        return error_page(401, "Sign-in failed: the identity provider gave no email address.")
    refusal = _refusal(email, claims.get("email_verified"))
    if refusal:
        return error_page(403, refusal)
    user = auth.ensure_user(db(), email, claims.get("name"))
    return _signed_in_as(user, session.pop(NEXT_KEY, None))


def _refusal(email: str, verified) -> str | None:
    """Why this email may not sign in, or None. Accounts are found by email, so an address the
    provider has not verified (anyone may type one) would open the account of its owner; a new
    account is refused as well, or it would hold the address once its owner arrives."""
    if str(verified).lower() != "true":  # some providers send the string "true"
        return (f"Sign-in refused: your identity provider has not verified that {email} is "
                "your address. Verify it with the provider (or ask its administrator to send "
                "the email_verified claim), then sign in again.")
    allowed = config().oidc_allowed_domains
    if allowed and email.rpartition("@")[2].lower() not in allowed:
        return (f"Sign-in refused: this server accepts addresses at {', '.join(allowed)} "
                f"only, not {email}.")
    return None


@bp.post("/login/token")
def token_login():
    """Sign in with a DSS login token (e.g. the one embedded mode prints at start)."""
    target = safe_next(request.form.get("next"))
    token = (request.form.get("token") or "").strip()
    if not token:
        return error_page(400, "Enter a login token.")
    try:
        user = auth.redeem(db(), token)
    except NotLoggedIn:
        return error_page(401, "This login token is not valid (tokens work once; get a new "
                               "one from /token or your administrator).")
    return _signed_in_as(user, target)


def _signed_in_as(user, target: str | None):
    """A fresh session id and form token for the browser (no fixation); the anonymous ones are
    dropped."""
    session.clear()
    new_session = auth.login_session(db(), user, session_id())
    response = redirect(safe_next(target), code=303)
    set_session_cookie(response, new_session)
    flash(f"Signed in as {user.email}.", "ok")
    return response


@bp.post("/logout")
def logout():
    auth.logout(db(), session_id())
    response = redirect(url_for("public.home"), code=303)
    delete_session_cookie(response)
    session.clear()
    if config().noauth:
        flash("Test mode: without a session every visitor is the test admin.", "ok")
    return response
