"""Users, login tokens (single use) and provider tokens (reusable), sessions. All stored hashed."""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DB

from ..errors import DSSError
from ..models import Session, Token, User, utcnow

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


def valid_session_id(value: str | None) -> bool:
    return bool(value) and bool(_SESSION_ID.match(value))


@dataclass
class Identity:
    """Who a request acts as: the user, and the session it came with (None: cookieless NOAUTH)."""
    user: User
    session: Session | None
    accept_terms: bool

    @property
    def session_hash(self) -> str | None:
        return self.session.session_hash if self.session else None


def find_session(db: DB, session_id: str | None) -> Session | None:
    if not valid_session_id(session_id):
        return None
    return db.scalar(select(Session).where(Session.session_hash == digest(session_id.lower())))


def identify(db: DB, session_id: str | None, noauth: bool) -> Identity | None:
    if valid_session_id(session_id):
        row = db.execute(select(Session, User).join(User, User.id == Session.user_id)
                         .where(Session.session_hash == digest(session_id.lower()))).first()
        if row is not None and row[0].atime > utcnow() - SESSION_IDLE_LIMIT:
            session, user = row
            if session.atime < utcnow() - SESSION_TOUCH_INTERVAL:  # one write a day, not per request
                session.atime = utcnow()
            return Identity(user, session, session.accept_terms)
    if noauth:
        return Identity(ensure_user(db, NOAUTH_EMAIL, "Test User", sysadmin=True,
                                    tier="poweruser"), find_session(db, session_id), True)
    return None


def ensure_user(db: DB, email: str, dispname: str | None = None, sysadmin: bool = False,
                tier: str = "guest") -> User:
    """The user with this email, created if new (an existing user keeps its rights)."""
    email = email.strip()
    if not _EMAIL.match(email):
        raise DSSError(400, f"Not an email address: {email!r}")
    user = db.scalar(select(User).where(User.email == email))
    if user is not None:
        return user
    try:
        with db.begin_nested():  # two first requests of the same user may race
            user = User(email=email, dispname=dispname or email, sysadmin=sysadmin, tier=tier)
            db.add(user)
    except IntegrityError:
        user = db.scalar(select(User).where(User.email == email))
    return user


def find_user(db: DB, email: str) -> User | None:
    return db.scalar(select(User).where(User.email == email.strip()))


def issue_token(db: DB, user: User, reusable: bool = False) -> str:
    """A new 48-hex token. A new login token replaces the user's previous one (single use)."""
    token = secrets.token_hex(24)
    if not reusable:
        db.execute(delete(Token).where(Token.user_id == user.id, Token.kind == "login"))
    db.add(Token(user_id=user.id, token_hash=digest(token),
                 kind="reusable" if reusable else "login"))
    db.flush()
    return token


def login(db: DB, token: str, session_id: str | None) -> tuple[User, str]:
    """Log a session in with a token; returns the user and the (kept or new) session id.

    A login token is used up (replaced by a fresh one the user can fetch from /api/token); a
    provider token stays valid. An existing session keeps its id: clients never re-read cookies.
    """
    found = db.scalar(select(Token).where(Token.token_hash == digest(token.strip())))
    if found is None:
        raise DSSError(401, "unauthorized")
    user = db.get(User, found.user_id)
    if found.kind == "login":
        db.delete(found)
        issue_token(db, user)
    return user, login_session(db, user, session_id)


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


def login_session(db: DB, user: User, session_id: str | None) -> str:
    """Log a browser session in as `user` (OAuth callback); returns the session id to set."""
    session = find_session(db, session_id)
    if session is None:
        session_id = new_session_id()
        session = Session(session_hash=digest(session_id))
        db.add(session)
    session.user_id, session.atime = user.id, utcnow()
    db.flush()
    return session_id
