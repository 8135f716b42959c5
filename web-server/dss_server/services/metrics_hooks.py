"""Calls into dss_server.metrics (Prometheus) when that module is present."""
from __future__ import annotations

try:
    from ..metrics import observe_claim, observe_ticket_finished
except ImportError:  # metrics.py is written separately; until it lands these do nothing
    def observe_claim(seconds: float) -> None:
        return None

    def observe_ticket_finished(service_githash: str, status: str, seconds: float) -> None:
        return None

__all__ = ["observe_claim", "observe_ticket_finished"]
