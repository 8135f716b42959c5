"""Structured log lines carry the service and ticket they concern (DSS_LOG_JSON)."""
from __future__ import annotations

import json
import logging

from dss_client.sdk.logs import JSONFormatter, TextFormatter, _ContextFilter, service_var, ticket_var


def _record(message, **extra):
    record = logging.LogRecord("dss_dispatcher.worker", logging.INFO, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    _ContextFilter().filter(record)
    return record


def test_json_lines_have_ticket_service_and_timings():
    service, ticket = service_var.set("LungSegmentation"), ticket_var.set(17)
    try:
        line = JSONFormatter().format(_record("success", timings={"download": 0.25}))
        text = TextFormatter().format(_record("claimed"))
    finally:
        service_var.reset(service)
        ticket_var.reset(ticket)
    document = json.loads(line)
    assert document["message"] == "success" and document["level"] == "info"
    assert (document["service"], document["ticket"]) == ("LungSegmentation", 17)
    assert document["timings"] == {"download": 0.25}
    assert document["time"].endswith("Z")
    assert "[LungSegmentation ticket 17] claimed" in text


def test_lines_outside_a_ticket_have_no_ticket():
    document = json.loads(JSONFormatter().format(_record("idle")))
    assert "ticket" not in document and "service" not in document

