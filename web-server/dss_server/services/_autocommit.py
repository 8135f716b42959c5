"""The autocommit pool (db.make_autocommit_engine), private to the services whose statements run
outside the request's transaction: the identity read (auth.identify) and the claim
(claims.claim). Views hand these services the pool; only this module and those two services
touch its connections."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, cast

from sqlalchemy.dialects.postgresql import psycopg2
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select, TextClause, Update


@contextmanager
def lend(pool: Engine | None) -> Iterator:
    """A pooled DBAPI connection of `pool` for one call's statements, back in the pool right
    after: a claim waiting for a ticket holds none. None where there is no pool (SQLite)."""
    if pool is None:
        yield None
        return
    connection = pool.raw_connection()
    try:
        yield connection
    finally:
        driver = connection.driver_connection
        if driver is None or driver.closed:  # lost (a database restart): not back to the pool
            connection.invalidate()
        else:
            connection.close()


class Query:
    """A Core statement that runs in the request's session, or straight on the cursor of an
    autocommit connection (PostgreSQL), compiled once to psycopg2's SQL text for that."""

    def __init__(self, statement: Select[Any] | Update | TextClause):
        self.statement = statement
        self.sql = str(statement.compile(dialect=psycopg2.dialect()))

    def first(self, db: Session, connection, params: dict) -> tuple | None:
        """The first row (None if none, or the statement returns no rows); `connection`: one
        that `lend` gave, or None to use `db`."""
        if connection is None:
            result = cast(CursorResult[Any], db.execute(self.statement, params))  # what a Core statement gives
            return result.first() if result.returns_rows else None
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            return cursor.fetchone() if cursor.description else None
