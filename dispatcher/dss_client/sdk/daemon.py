"""The claim loop of one service, and the supervisor that runs every service's workers.

Each service gets DSS_WORKERS worker threads; each worker has its own session and claims one
ticket at a time with the server's long poll (`wait=`), so an idle dispatcher costs one
request per DSS_CLAIM_WAIT seconds. The supervisor restarts a worker whose thread died.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from .. import DSSClient, DSSError, TransientError
from . import metrics
from .config import Config
from .job import TicketJob
from .logs import service_var
from .retry import backoff_delay
from .service import Service
from .session import ProviderSession
from .workdirs import unwritable_reason

log = logging.getLogger(__name__)
GITHASH = re.compile(r"^[0-9a-f]{40}$")
SUPERVISE_SECONDS = 1.0
IDLE_DRAIN_SECONDS = 2.0
REFUSALS_UNHEALTHY = 3   # logins refused in a row: the token is wrong, not a server hiccup


def resolve_githashes(session: ProviderSession, service: Service, provider: str) -> list[str]:
    """The githashes this worker claims for: the service's own, or every registered version
    (or the one `version`) of the named service that the provider may provide."""
    if GITHASH.match(service.name):
        return [service.name]
    return sorted({row.githash for row in session.call(DSSClient.provider_services)
                   if row.name == service.name and row.provider == provider
                   and service.version in ("", row.version)})


class Worker:
    def __init__(self, settings: Config, service: Service, index: int, stopping: threading.Event):
        self.settings, self.service, self.index, self.stopping = settings, service, index, stopping
        self.provider = service.provider or settings.provider_name
        self.busy_with: int | None = None
        self.heartbeat = time.monotonic()
        self.local_fault: str | None = None   # the scratch folder failed: claim nothing, unhealthy
        self.local_faults = 0                 # in a row: the pause grows with each
        self.refusals = 0                     # logins refused (401) in a row
        self.thread = threading.Thread(target=self.run, name=f"{service.label}-{index}",
                                       daemon=True)

    def run(self) -> None:
        service_var.set(self.service.label)
        session = ProviderSession(self.settings.server_url, self.settings.provider_token,
                                  self.settings.retry_budget, self.service.label)
        githashes: list[str] = []
        failures = 0
        try:
            while not self.stopping.is_set():
                self.heartbeat = time.monotonic()
                try:
                    githashes = githashes or self._resolve(session)
                    if githashes and self._scratch_folder_usable():
                        self._claim_and_process(session, githashes)
                    failures = self.refusals = 0
                except (DSSError, TransientError) as exc:
                    failures += 1
                    self.refusals = self.refusals + 1 if getattr(exc, "status", None) == 401 else 0
                    githashes = []   # the services may have been re-registered
                    delay = backoff_delay(failures, cap=max(self.settings.poll_interval, 1) * 6)
                    if getattr(exc, "status", None) == 401:
                        log.error("the server refused us (%s): check DSS_PROVIDER_TOKEN and that "
                                  "its user may provide %s for provider %s; trying again in %.1f s",
                                  exc, self.service.name, self.provider, delay)
                    else:
                        log.warning("DSS server problem (%s); trying again in %.1f s", exc, delay)
                    self.stopping.wait(delay)
        except Exception:   # a bug: the supervisor restarts this worker
            log.exception("worker crashed")
        finally:
            session.close()

    def _resolve(self, session: ProviderSession) -> list[str]:
        githashes = resolve_githashes(session, self.service, self.provider)
        if githashes:
            log.info("claiming tickets of %s (%s) as provider %s", self.service.name,
                     ", ".join(h[:8] for h in githashes), self.provider)
        else:
            log.warning("service %s is not registered for provider %s; waiting",
                        self.service.name, self.provider)
            self.stopping.wait(self.settings.poll_interval)
        return githashes

    def _claim_and_process(self, session: ProviderSession, githashes: list[str]) -> None:
        started = time.monotonic()
        claim = session.call_once(DSSClient.claim, githashes, self.provider,
                                  self.settings.provider_code, wait=self.settings.claim_wait or None)
        metrics.CLAIMS.labels(self.service.label, "ticket" if claim else "none").inc()
        if claim is None:
            # a server without the long poll answers at once: never spin
            if time.monotonic() - started < min(1.0, self.settings.claim_wait / 2):
                self.stopping.wait(self.settings.poll_interval)
            return
        log.info("claimed ticket %d", claim.ticket_id)
        self.busy_with = claim.ticket_id
        metrics.BUSY_WORKERS.labels(self.service.label).inc()
        job = TicketJob(self.settings, self.service, session, claim.ticket_id, self.stopping)
        try:
            job.run()
        finally:
            metrics.BUSY_WORKERS.labels(self.service.label).dec()
            self.busy_with = None
        self.local_fault = job.local_fault
        self.local_faults = self.local_faults + 1 if job.local_fault else 0

    def _scratch_folder_usable(self) -> bool:
        """After a local fault, wait (longer each time: a probe can pass on a disk too full for
        a CT), then claim again only once the scratch folder takes a file."""
        if self.local_fault is None:
            return True
        delay = backoff_delay(self.local_faults, base=2.0, cap=60.0)
        log.error("paused: %s; checking the scratch folder again in %.1f s", self.local_fault,
                  delay)
        if self.stopping.wait(delay):
            return False
        self.local_fault = unwritable_reason(self.settings.work_dir)
        if self.local_fault is None:
            log.info("the scratch folder %s can be written again; claiming tickets",
                     self.settings.work_dir)
        return self.local_fault is None


class Supervisor:
    def __init__(self, settings: Config, services: list[Service]):
        self.settings = settings
        self.stopping = threading.Event()
        self.workers = [Worker(settings, service, i, self.stopping)
                        for service in services for i in range(settings.workers)]

    def run(self) -> None:
        for worker in self.workers:
            worker.thread.start()
        crashes = [0] * len(self.workers)
        restart_at = [0.0] * len(self.workers)
        while not self.stopping.wait(SUPERVISE_SECONDS):
            for position, worker in enumerate(self.workers):
                if worker.thread.is_alive():
                    continue
                if not restart_at[position]:   # just found dead: restart after a backoff
                    crashes[position] += 1
                    delay = backoff_delay(crashes[position], base=1.0, cap=60.0)
                    restart_at[position] = time.monotonic() + delay
                    log.error("worker %s died; restarting it in %.1f s", worker.thread.name, delay)
                elif time.monotonic() >= restart_at[position]:
                    metrics.DAEMON_RESTARTS.labels(worker.service.label).inc()
                    restart_at[position] = 0.0
                    self.workers[position] = Worker(self.settings, worker.service, worker.index,
                                                    self.stopping)
                    self.workers[position].thread.start()
        self._drain()

    def _drain(self) -> None:
        """Wait for the workers busy with a ticket (each stops after its current stage); idle
        ones in a long-polling claim get a moment, then the process exits without them (a
        ticket claimed in that moment comes back through its claim lease)."""
        idle_deadline = time.monotonic() + IDLE_DRAIN_SECONDS
        for worker in self.workers:
            while worker.thread.is_alive() and (worker.busy_with or time.monotonic() < idle_deadline):
                worker.thread.join(0.1)
        log.info("dispatcher stopped")

    def stop(self) -> None:
        self.stopping.set()

    def health(self) -> dict:
        stale = self.settings.claim_wait + self.settings.retry_budget + 60
        now = time.monotonic()
        workers: list[dict[str, Any]] = [{"name": w.thread.name, "alive": w.thread.is_alive(), "ticket": w.busy_with,
                    "idle_s": round(now - w.heartbeat, 1), "fault": w.local_fault,
                    "refused": w.refusals >= REFUSALS_UNHEALTHY}
                   for w in self.workers]
        ok = not self.stopping.is_set() and all(
            w["alive"] and not w["fault"] and not w["refused"]
            and (w["ticket"] or w["idle_s"] < stale) for w in workers)
        return {"ok": ok, "workers": workers}
