"""Log lines with the ticket and service they concern, as text or as JSON (DSS_LOG_JSON)."""
from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

ticket_var: contextvars.ContextVar[int | None] = contextvars.ContextVar("ticket", default=None)
service_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("service", default=None)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.ticket = ticket_var.get()
        record.service = service_var.get()
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                + f".{int(record.msecs):03d}Z", "level": record.levelname.lower(),
                "logger": record.name, "message": record.getMessage()}
        for key in ("service", "ticket", "timings"):
            if getattr(record, key, None) is not None:
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(where)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ticket = getattr(record, "ticket", None)
        parts = [p for p in (getattr(record, "service", None), f"ticket {ticket}" if ticket else None) if p]
        record.where = f"[{' '.join(parts)}] " if parts else ""
        return super().format(record)


def setup_logging(json_lines: bool, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(JSONFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
