"""`GET /api/openapi.json`: the OpenAPI 3.0 document of the whole API (dss_server/openapi.json)."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response

DOCUMENT = Path(__file__).resolve().parent.parent / "openapi.json"

bp = Blueprint("openapi", __name__)


@bp.get("/api/openapi.json")
def openapi_document():
    return Response(DOCUMENT.read_bytes(), status=200, content_type="application/json")
