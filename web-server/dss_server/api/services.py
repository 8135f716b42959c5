"""Services as users see them (spec c.2)."""
from __future__ import annotations

from flask import Blueprint

from .. import wire
from ..services import catalog
from ._http import db, identity, wants_json

bp = Blueprint("services", __name__)


@bp.get("/api/services")
def list_services():
    identity()
    rows = [(s.name, s.githash, s.version, s.shortdesc) for s in catalog.current_services(db())]
    return wire.table(("name", "githash", "version", "shortdesc"), rows, wants_json())


@bp.get("/api/services/<githash>/detail")
def detail(githash):
    identity()
    return wire.json_text(catalog.by_githash(db(), githash).json or "{}")


@bp.get("/api/services/<githash>/stats")
def stats(githash):
    identity()
    values = catalog.stats(db(), catalog.by_githash(db(), githash))
    return wire.table(tuple(values), [tuple(values.values())], wants_json())
