"""The DSS wire formats, produced here and nowhere else (spec 0.1, c.0, h.4).

CSV: `\\r\\n` line ends, no header, csv-module quoting. Scalars: bare text without newline.
JSON: `{"result": ...}`. Timestamps: `YYYY-MM-DD HH:MM:SS[.ffffff]`. Empty claim: `None`.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any, Iterable, Sequence

from flask import Response

CSV_TYPE = "text/csv; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
JSON_TYPE = "application/json"


def text_value(value: Any) -> str:
    """Python `str()` as the original printed scalars and CSV cells; NULL is empty in CSV."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return timestamp(value)
    return str(value)


def timestamp(value: datetime) -> str:
    return str(value.replace(tzinfo=None))


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return timestamp(value)
    return value


def csv_text(rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([text_value(cell) for cell in row])
    return out.getvalue()


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], as_json: bool) -> Response:
    """A list endpoint's answer: CSV rows in `columns` order, or JSON objects keyed by them."""
    rows = list(rows)
    if as_json:
        return json_response([{c: json_value(v) for c, v in zip(columns, row)} for row in rows])
    return Response(csv_text(rows), status=200, content_type=CSV_TYPE)


def json_response(result: Any) -> Response:
    return raw_json({"result": result})


def raw_json(document: Any) -> Response:
    return Response(json.dumps(document, default=json_value), status=200, content_type=JSON_TYPE)


def json_text(text: str) -> Response:
    """Stored JSON text served as is (service detail)."""
    return Response(text, status=200, content_type=JSON_TYPE)


def text(value: Any) -> Response:
    """A scalar body: `17`, `ready`, `0.4`, `success`; no trailing newline."""
    return Response(text_value(value), status=200, content_type=TEXT_TYPE)


def none() -> Response:
    """What web.py printed for a handler returning None; clients test for this literal body."""
    return Response("None", status=200, content_type=TEXT_TYPE)


def error(status: int, message: str, as_json: bool) -> Response:
    if as_json:
        return Response(json.dumps({"error": message}), status=status, content_type=JSON_TYPE)
    return Response(message, status=status, content_type=TEXT_TYPE)


def logged_in(email: str, as_json: bool) -> Response:
    if as_json:
        return json_response({"email": email})
    return Response(f"logged in as {email} \n", status=200, content_type=TEXT_TYPE)
