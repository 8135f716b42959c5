"""The probe server: /metrics in Prometheus text format, /healthz from the supervisor's state."""
from __future__ import annotations

import requests

from dss_client.sdk import metrics
from helpers import free_port


def test_metrics_and_health_endpoints():
    state = {"ok": True, "workers": []}
    port = free_port()
    server = metrics.serve(port, lambda: state)
    try:
        metrics.TICKETS.labels("ProbeTest", "success").inc()
        body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert body.status_code == 200 and body.headers["Content-Type"].startswith("text/plain")
        assert 'dss_dispatcher_tickets_total{outcome="success",service="ProbeTest"} 1.0' in body.text
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["ok"] is True
        state["ok"] = False
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 503
        assert requests.get(f"http://127.0.0.1:{port}/other", timeout=5).status_code == 404
    finally:
        server.shutdown()
        server.server_close()
