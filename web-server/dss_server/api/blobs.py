"""Public attachment links (spec c.5): no login, shareable."""
from __future__ import annotations

import re

from flask import Blueprint

from ..errors import DSSError
from ..services import files
from ._http import config, db, download

bp = Blueprint("blobs", __name__)
BLOB_ID = re.compile(r"^[0-9a-fA-F]{8}([0-9a-fA-F]{24})?$")


@bp.get("/blobs/<blob_id>")
def blob(blob_id):
    if not BLOB_ID.match(blob_id):
        raise DSSError(400, f"Resource {blob_id} not found")
    path, mime_type = files.blob(db(), config().datastore, blob_id)
    return download(path, path.name, mimetype=mime_type, attachment=False)
