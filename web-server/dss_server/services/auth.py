"""Users, login tokens (single use) and provider tokens (reusable), sessions. All stored hashed."""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from functools import cached_property
from typing import TypeGuard

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DB

from ..errors import Invalid, NotLoggedIn
from ..models import Session, Token, User, table_of, utcnow
from ._autocommit import Query, lend

NOAUTH_EMAIL = "test@example.com"
EMBEDDED_ADMIN_EMAIL = "admin@localhost"
_SESSION_ID = re.compile(r"^[0-9a-fA-F]{40}$")
SESSION_IDLE_LIMIT = timedelta(days=365)  # the original's session timeout
SESSION_TOUCH_INTERVAL = timedelta(days=1)
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+$")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_session_id() -> str:
    """40 hex, like web.py's SHA-1 session ids."""
    return secrets.token_hex(20)


def valid_session_id(value: str | None) -> TypeGuard[str]:
    return value is not None and bool(_SESSION_ID.match(value))


class Identity:
    """Who a request acts as: the user, and the session it came with (None: cookieless NOAUTH).

    Read with one Core query (an ORM load of the user cost more than a whole claim); the User
    entity is loaded on first use of `user`, by the views that need more than id and rights.
    """

    def __init__(self, db: DB, user_id: int, sysadmin: bool, session_hash: str | None,
                 accept_terms: bool):
        self._db = db
        self.user_id, self.sysadmin = user_id, sysadmin
        self.session_hash, self.accept_terms = session_hash, accept_terms

    @cached_property
    def user(self) -> User:
        return self._db.get_one(User, self.user_id)


_SESSIONS, _USERS = table_of(Session), table_of(User)
_SESSION_IDENTITY = Query(select(_SESSIONS.c.user_id, _USERS.c.sysadmin, _SESSIONS.c.atime,
                                  _SESSIONS.c.accept_terms)
                           .join(_USERS, _USERS.c.id == _SESSIONS.c.user_id)
                           .where(_SESSIONS.c.session_hash == bindparam("session_hash")))
_TOUCH_SESSION = Query(update(_SESSIONS).where(_SESSIONS.c.session_hash == bindparam("hash"))
                       .values(atime=bindparam("now")))
_USER_RIGHTS = Query(select(_USERS.c.id, _USERS.c.sysadmin)
                     .where(_USERS.c.email == bindparam("email")))
_SESSION_KNOWN = Query(select(_SESSIONS.c.id)
                       .where(_SESSIONS.c.session_hash == bindparam("session_hash")))


def find_session(db: DB, session_id: str | None) -> Session | None:
    if not valid_session_id(session_id):
        return None
    return db.scalar(select(Session).where(Session.session_hash == digest(session_id.lower())))


def identify(*, db: DB, session_id: str | None, noauth: bool, pool: Engine | None = None) -> Identity | None:
    """Who the request acts as, read in `db`, or on PostgreSQL on a connection of the autocommit
    `pool` (db.make_autocommit_engine): outside the request's transaction, so a claim needs none."""
    with lend(pool) as connection:
        return _identify(db, session_id, noauth, connection)


def _identify(db: DB, session_id: str | None, noauth: bool, connection) -> Identity | None:
    session_hash = digest(session_id.lower()) if valid_session_id(session_id) else None
    if session_hash is not None:
        row = _SESSION_IDENTITY.first(db, connection, {"session_hash": session_hash})
        if row is not None:
            user_id, sysadmin, atime, accept_terms = row
            if atime > utcnow() - SESSION_IDLE_LIMIT:
                if atime < utcnow() - SESSION_TOUCH_INTERVAL:  # one write a day, not per request
                    _TOUCH_SESSION.first(db, connection, {"hash": session_hash, "now": utcnow()})
                return Identity(db, user_id, sysadmin, session_hash, accept_terms)
    if noauth:
        return _noauth_identity(db, session_hash, connection)
    return None


def _noauth_identity(db: DB, session_hash: str | None, connection) -> Identity:
    """The test admin; a claim made with a cookie is still fenced to that cookie's session.
    A test admin created here is the request's to commit (a claim commits before its statement)."""
    row = _USER_RIGHTS.first(db, connection, {"email": NOAUTH_EMAIL})
    if row is None:
        user = ensure_user(db, NOAUTH_EMAIL, "Test User", sysadmin=True, tier="poweruser")
        row = (user.id, user.sysadmin)
    known = session_hash is not None and _SESSION_KNOWN.first(
        db, connection, {"session_hash": session_hash}) is not None
    return Identity(db, row[0], row[1], session_hash if known else None, True)


def ensure_user(db: DB, email: str, dispname: str | None = None, sysadmin: bool = False,
                tier: str = "guest") -> User:
    """The user with this email, created if new (an existing user keeps its rights)."""
    email = email.strip()
    if not _EMAIL.match(email):
        raise Invalid(f"Not an email address: {email!r}")
    user = db.scalar(select(User).where(User.email == email))
    if user is not None:
        return user
    try:
        with db.begin_nested():  # two first requests of the same user may race
            user = User(email=email, dispname=dispname or email, sysadmin=sysadmin, tier=tier)
            db.add(user)
    except IntegrityError:
        user = db.scalars(select(User).where(User.email == email)).one()
    return user


def find_user(db: DB, email: str) -> User | None:
    return db.scalar(select(User).where(User.email == email.strip()))


def user_by_id(db: DB, user_id: int) -> User | None:
    """The user, or None; also None for an id out of the column's range, which SQLite would
    not even compare (a 500 for 2**63)."""
    return db.get(User, user_id) if 0 < user_id < 2 ** 31 else None


def issue_token(db: DB, user: User, reusable: bool = False) -> str:
    """A new 48-hex token. A new login token replaces the user's previous one (single use).

    A reusable token never expires and sits in a daemon's configuration: on an administrator's
    account it would be a standing admin credential, so provider tokens are refused there.
    """
    if reusable and user.sysadmin:
        raise Invalid(f"Provider tokens are for service accounts, and {user.email} is an "
                      "administrator: use a dedicated account for the provider's daemon")
    token = secrets.token_hex(24)
    if not reusable:
        db.execute(delete(Token).where(Token.user_id == user.id, Token.kind == "login"))
    db.add(Token(user_id=user.id, token_hash=digest(token),
                 kind="reusable" if reusable else "login"))
    db.flush()
    return token


def make_admin(db: DB, user: User) -> None:
    """Provider tokens are for service accounts (issue_token refuses them to administrators), so
    an account holding one is a daemon's: it does not become an administrator."""
    holds_provider_token = db.scalar(select(Token.id).where(
        Token.user_id == user.id, Token.kind == "reusable").limit(1)) is not None
    if not user.sysadmin and holds_provider_token:
        raise Invalid(f"{user.email} holds provider tokens, so it is a provider daemon's "
                      "account: an administrator needs an account of their own")
    user.sysadmin = True


def revoke_provider_tokens(db: DB, user_ids: list[int]) -> None:
    """Delete the users' reusable tokens, and sign out the accounts that held one: a daemon of
    a retired provider keeps its access rows (as the original), so a session it already holds
    would otherwise go on claiming that provider's tickets. People without provider tokens
    (an admin leaving a provider) stay signed in."""
    if not user_ids:
        return
    daemons = set(db.scalars(delete(Token).where(Token.user_id.in_(user_ids),
                                                 Token.kind == "reusable")
                             .returning(Token.user_id)))
    if daemons:
        db.execute(delete(Session).where(Session.user_id.in_(daemons)))


def login(db: DB, token: str, session_id: str | None) -> tuple[User, str]:
    """Log a session in with a token; returns the user and the new session id."""
    user = redeem(db, token)
    return user, login_session(db, user, session_id)


def redeem(db: DB, token: str) -> User:
    """The token's user. A login token is used up (replaced by a fresh one the user can fetch
    from /api/token) in the statement that finds it, so of concurrent logins with it only one
    succeeds (PostgreSQL makes the others wait for the row, then see it gone); a provider token
    stays valid."""
    token_hash = digest(token.strip())
    user_id = db.scalar(delete(Token).where(Token.token_hash == token_hash, Token.kind == "login")
                        .returning(Token.user_id))
    if user_id is not None:
        user = db.get_one(User, user_id)
        issue_token(db, user)
        return user
    user_id = db.scalar(select(Token.user_id).where(Token.token_hash == token_hash,
                                                    Token.kind == "reusable"))
    if user_id is None:
        raise NotLoggedIn("unauthorized")
    return db.get_one(User, user_id)


def logout(db: DB, session_id: str | None) -> None:
    session = find_session(db, session_id)
    if session is not None:
        db.delete(session)
        db.flush()


def set_accept_terms(db: DB, session_id: str | None, accepted: bool) -> None:
    """The web UI's terms form; /api/token needs it (except in NOAUTH mode)."""
    session = find_session(db, session_id)
    if session is not None:
        session.accept_terms = accepted
        db.flush()


def login_session(db: DB, user: User, old_session_id: str | None) -> str:
    """End the session the client sent and start a new one as `user`; returns its id.

    Never the client's id: one planted in a victim's client must not become their session
    (fixation). Clients store the cookie of the login answer (protocol rule 4): no rotation.
    """
    logout(db, old_session_id)
    session_id = new_session_id()
    db.add(Session(session_hash=digest(session_id), user_id=user.id, atime=utcnow()))
    db.flush()
    return session_id
