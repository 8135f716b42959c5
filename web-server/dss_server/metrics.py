"""Prometheus metrics of the web server: `/metrics`, HTTP latency, claims, ticket durations.

Histograms are observed in the process that serves the request. Under gunicorn with several
workers, prometheus_client's multiprocess mode (on when the PROMETHEUS_MULTIPROC_DIR variable is
set; prometheus_client reads it itself) writes them to shared files that every worker's `/metrics`
merges. The ticket, queue and service figures are read from the database at scrape time, so they
are the same whichever worker answers and need no bookkeeping in the request path.
"""
from __future__ import annotations

import logging
import time

from flask import Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from .models import Service, Ticket, TicketHistory, utcnow

log = logging.getLogger(__name__)

HTTP_LATENCY = Histogram(
    "dss_http_request_duration_seconds", "Time to answer an HTTP request (body streaming excluded)",
    ["endpoint", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
CLAIM_LATENCY = Histogram(
    "dss_claim_duration_seconds", "Time the claim transaction took to select and take a ticket",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
TICKET_DURATION = Histogram(
    "dss_ticket_duration_seconds", "Time from claim to success or failure, by service and outcome",
    ["service", "status"],
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600))


def observe_claim(seconds: float) -> None:
    CLAIM_LATENCY.observe(seconds)


def observe_ticket_finished(service_githash: str, status: str, seconds: float) -> None:
    TICKET_DURATION.labels(service=service_githash, status=status).observe(seconds)


def init_app(app: Flask) -> None:
    """Time every request and serve `/metrics` (no auth: scrape it from inside the cluster)."""
    database_registry = CollectorRegistry(auto_describe=False)
    database_registry.register(DatabaseCollector(app.extensions["dss_sessions"]))
    app.extensions["dss_metrics_registry"] = database_registry

    @app.before_request
    def _start_timer():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _remember_status(response):
        g.metrics_status = response.status_code
        return response

    # Teardown runs after every after_request hook, so the time includes the commit.
    @app.teardown_request
    def _observe(exc):
        started = g.pop("metrics_started", None)
        if started is None:
            return
        status = g.pop("metrics_status", 500 if exc is not None else 200)
        HTTP_LATENCY.labels(endpoint=request.endpoint or "unmatched", method=request.method,
                            status=str(status)).observe(time.perf_counter() - started)

    app.add_url_rule("/metrics", "metrics", _metrics_view, methods=["GET"])


def _metrics_view() -> Response:
    body = generate_latest(_histogram_registry())
    body += generate_latest(current_app.extensions["dss_metrics_registry"])
    return Response(body, status=200, content_type=CONTENT_TYPE_LATEST)


def _histogram_registry() -> CollectorRegistry:
    """This process's registry, or (multiprocess mode) one that merges every worker's files."""
    if values.ValueClass is values.MutexValue:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry


class DatabaseCollector:
    """Ticket counts, queue depth and the oldest ready ticket's age, queried at scrape time."""

    def __init__(self, session_factory):
        self.session_factory = session_factory

    def collect(self):
        database_up = GaugeMetricFamily("dss_metrics_database_up",
                                        "1 when the database answered this scrape's queries")
        try:
            with self.session_factory() as db:
                families = self._families(db)
        except SQLAlchemyError as exc:
            log.warning("metrics: database query failed (%s)", exc.__class__.__name__)
            database_up.add_metric([], 0)
            yield database_up
            return
        database_up.add_metric([], 1)
        yield database_up
        yield from families

    def _families(self, db) -> list[GaugeMetricFamily]:
        services = GaugeMetricFamily(
            "dss_service_info", "Registered services (value 1), to join a githash to its name",
            labels=["service", "name", "version", "current"])
        tickets = GaugeMetricFamily("dss_tickets", "Tickets by service and status",
                                    labels=["service", "status"])
        queue = GaugeMetricFamily("dss_queue_depth", "Ready tickets waiting for a claim",
                                  labels=["service"])
        oldest = GaugeMetricFamily(
            "dss_oldest_ready_age_seconds",
            "Seconds since the longest-waiting ready ticket became ready (0 when none)",
            labels=["service"])
        ready_counts: dict[str, int] = {}
        for service, status, count in db.execute(
                select(Ticket.service_githash, Ticket.status, func.count())
                .group_by(Ticket.service_githash, Ticket.status)):
            tickets.add_metric([service, status], count)
            if status == "ready":
                ready_counts[service] = count
        waiting_since = dict(db.execute(_oldest_ready_query()).all())
        now = utcnow()
        for githash, name, version, current in db.execute(
                select(Service.githash, Service.name, Service.version, Service.current)):
            services.add_metric([githash, name, version, str(bool(current)).lower()], 1)
            queue.add_metric([githash], ready_counts.get(githash, 0))
            since = waiting_since.get(githash)
            oldest.add_metric([githash], max(0.0, (now - since).total_seconds()) if since else 0.0)
        return [services, tickets, queue, oldest]


def _oldest_ready_query():
    """Per service, the earliest time a currently ready ticket became ready (its last `ready`)."""
    became_ready = (select(TicketHistory.ticket_id, func.max(TicketHistory.atime).label("ready_at"))
                    .join(Ticket, Ticket.id == TicketHistory.ticket_id)
                    .where(Ticket.status == "ready", TicketHistory.status == "ready")
                    .group_by(TicketHistory.ticket_id).subquery())
    return (select(Ticket.service_githash, func.min(became_ready.c.ready_at))
            .join(became_ready, became_ready.c.ticket_id == Ticket.id)
            .group_by(Ticket.service_githash))
