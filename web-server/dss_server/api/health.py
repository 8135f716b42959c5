"""/healthz (the process answers) and /readyz (database reachable, migrations at head)."""
from __future__ import annotations

from flask import Blueprint, current_app
from sqlalchemy.exc import SQLAlchemyError

from .. import db as database
from .. import wire

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return wire.text("ok")


@bp.get("/readyz")
def readyz():
    try:
        at_head = database.migrations_at_head(current_app.extensions["dss_engine"])
    except SQLAlchemyError as exc:
        return wire.error(503, f"database unreachable: {exc.__class__.__name__}", False)
    if not at_head:
        return wire.error(503, "database schema is not at the newest migration: "
                               "run `python -m dss_server migrate`", False)
    return wire.text("ok")
