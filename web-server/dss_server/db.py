"""Engine, one session per request, and the Alembic migrations run from code."""
from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Callable, cast

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, text
from sqlalchemy.dialects.postgresql import psycopg2
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker
from sqlalchemy.sql import Select, TextClause, Update

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30000
log = logging.getLogger(__name__)
AFTER_COMMIT = "dss_after_commit"  # Session.info key: what to do once the transaction commits
# Key of the PostgreSQL advisory lock that serialises migrations (any constant both sides share).
MIGRATION_LOCK_KEY = 0x4453534D49475241  # "DSSMIGRA"
# Connections each pool keeps open per process: about the requests one worker serves at once
# (gunicorn.conf.py: 16 threads). Beyond it, connections are opened for a request and closed
# after, and a new PostgreSQL backend costs more CPU than many claims.
POOL_SIZE = 10


def make_engine(database_url: str) -> Engine:
    if database_url.startswith("sqlite"):
        return _sqlite_engine(database_url)
    # No pre-ping (a round trip per request); connections are recycled hourly instead, and a
    # request that meets a dead connection after a database restart answers 503 (Retry-After)
    # once per worker, while SQLAlchemy replaces the pool.
    return create_engine(database_url, pool_recycle=3600, pool_size=POOL_SIZE, max_overflow=30)


def make_autocommit_engine(database_url: str) -> Engine | None:
    """PostgreSQL: a second pool, of connections that commit each statement on its own.

    A request's identity is one read and a claim one statement (services/claims.py); run in the
    ORM session, the transaction around them (BEGIN, COMMIT) and the session's bookkeeping cost
    more CPU than the statements (bench/claim.py). They run on one of these connections instead,
    straight on the DBAPI cursor. None on SQLite, where everything goes through the session.
    """
    if database_url.startswith("sqlite"):
        return None
    return create_engine(database_url, isolation_level="AUTOCOMMIT", pool_recycle=3600,
                         pool_size=POOL_SIZE, max_overflow=30,
                         pool_reset_on_return=None)  # no transaction to end


# Lends a pooled autocommit connection (a DBAPI connection of make_autocommit_engine, or None
# where there is none) for a `with` block: api._http.autocommit.
Lender = Callable[[], AbstractContextManager[Any]]


class Query:
    """A Core statement that runs in the request's session, or straight on the cursor of an
    autocommit connection (PostgreSQL), compiled once to psycopg2's SQL text for that."""

    def __init__(self, statement: Select[Any] | Update | TextClause):
        self.statement = statement
        self.sql = str(statement.compile(dialect=psycopg2.dialect()))

    def first(self, db: Session, autocommit, params: dict) -> tuple | None:
        """The first row (None if none, or the statement returns no rows); `autocommit`: a
        pooled DBAPI connection of make_autocommit_engine, or None to use `db`."""
        if autocommit is None:
            result = cast(CursorResult[Any], db.execute(self.statement, params))  # what a Core statement gives
            return result.first() if result.returns_rows else None
        with autocommit.cursor() as cursor:
            cursor.execute(self.sql, params)
            return cursor.fetchone() if cursor.description else None


def _sqlite_engine(database_url: str) -> Engine:
    path = database_url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(database_url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" below open the transaction, not the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        # Writers queue on the database lock up front, so a claim is read-and-update atomic.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker:
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    event.listen(factory, "after_commit", _run_after_commit)
    event.listen(factory, "after_transaction_end", _forget_after_commit)
    return factory


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run `action` once the session's transaction commits; a rollback drops it. Files that a
    transaction forgets are removed this way: a failed request must not leave rows whose files
    are gone (a crash in between leaves a stray file instead, which loses nothing)."""
    session.info.setdefault(AFTER_COMMIT, []).append(action)


def _run_after_commit(session: Session) -> None:
    for action in session.info.pop(AFTER_COMMIT, []):
        try:
            action()
        except OSError as exc:  # committed: the answer stands, a stray file is only a leak
            log.warning("cleanup after commit failed: %s", exc)


def _forget_after_commit(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended without a commit
        session.info.pop(AFTER_COMMIT, None)


def _alembic_config(connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision.

    Several web replicas may start at once: on PostgreSQL they queue on an advisory lock held
    until the upgrade commits, so the later ones find the schema at head and do nothing.
    (SQLite's BEGIN IMMEDIATE already serialises them.)
    """
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": MIGRATION_LOCK_KEY})
        command.upgrade(_alembic_config(connection), "head")


def migrations_at_head(engine: Engine) -> bool:
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
        heads = set(ScriptDirectory.from_config(_alembic_config(connection)).get_heads())
    return current == heads
