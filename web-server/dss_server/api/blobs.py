"""Public attachment links (spec c.5): no login, shareable.

Served inline with the stored MIME type, exactly, as the original; a provider chooses that type,
so the browser gets the file as a sandboxed document (no scripts, an origin of its own): an HTML
or SVG attachment cannot act on this site with the visitor's session.
"""
from __future__ import annotations

import re

from flask import Blueprint

from ..errors import ResourceNotFound
from ..services import files
from ._http import config, db, download

bp = Blueprint("blobs", __name__)
BLOB_ID = re.compile(r"^[0-9a-fA-F]{8}([0-9a-fA-F]{24})?$")
SANDBOX_POLICY = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


@bp.get("/blobs/<blob_id>")
def blob(blob_id):
    if not BLOB_ID.match(blob_id):
        raise ResourceNotFound(f"Resource {blob_id} not found")
    path, mime_type = files.blob(db(), config().datastore, blob_id)
    response = download(path, path.name, mimetype=mime_type, attachment=False)
    response.headers["Content-Type"] = mime_type  # as stored: no charset added to text/*
    del response.headers["Content-Disposition"]  # send_file's `inline`; the original sends none
    response.headers["Content-Security-Policy"] = SANDBOX_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
