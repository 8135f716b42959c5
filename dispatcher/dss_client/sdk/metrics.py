"""Prometheus metrics and the small HTTP server for `/metrics` and `/healthz`."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

TICKETS = Counter("dss_dispatcher_tickets_total", "Tickets processed, by outcome",
                  ["service", "outcome"])
TICKET_SECONDS = Histogram("dss_dispatcher_ticket_seconds", "Time from claim to outcome",
                           ["service", "outcome"],
                           buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600))
STAGE_SECONDS = Histogram("dss_dispatcher_stage_seconds", "Time per stage", ["service", "stage"],
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800))
BUSY_WORKERS = Gauge("dss_dispatcher_busy_workers", "Workers processing a ticket", ["service"])
RETRIES = Counter("dss_dispatcher_retries_total", "Transient failures retried", ["service", "target"])
CLAIMS = Counter("dss_dispatcher_claims_total", "Claim requests, by result", ["service", "result"])
DAEMON_RESTARTS = Counter("dss_dispatcher_daemon_restarts_total", "Crashed daemons restarted",
                          ["service"])


def serve(port: int, health: Callable[[], dict]) -> ThreadingHTTPServer:
    """Start the probe server in a daemon thread; `health()` gives {"ok": bool, ...}."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                state = health()
                self._send(200 if state.get("ok") else 503, json.dumps(state).encode(),
                           "application/json")
            else:
                self._send(404, b'{"error": "not found"}', "application/json")

        def _send(self, status: int, body: bytes, content_type: str):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # probes every few seconds would drown the log
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
