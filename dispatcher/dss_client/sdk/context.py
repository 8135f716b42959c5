"""What a service function gets besides the workspace: its ticket and parameters, progress,
log, attachments, a scratch folder, cancel detection and retries, each renewing the claim's
lease."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, TypeVar

from .. import DSSClient, DSSError, DSSTransientError
from . import metrics
from .retry import retry

T = TypeVar("T")
STATUS_CHECK_SECONDS = 2.0   # cancelled() asks the server at most this often
SHUTDOWN_REASON = "the provider is shutting down"
LEVELS = ("info", "warning", "error")
RUN = "run"   # the function's share of the ticket's progress (job.STAGES)


class Cancelled(Exception):
    """Stop working on the ticket without touching it: deleted or retried by its user, no
    longer ours, or this process shutting down (then the SDK releases it)."""


class TicketFailed(Exception):
    """A permanent problem with the ticket; the message is written to its log for the user."""


class Context:
    def __init__(self, job, image: Path, scratch: Path, params: dict):
        self._job = job
        self.ticket_id: int = job.id
        self.params = params      # the ticket's parameters, typed, defaults filled (service.json)
        self.image = image        # the input layer's image file (the service's input tag)
        self.scratch = scratch    # this ticket's own folder, removed when the ticket ends
        self._stage: str | None = None
        self._checked_at = time.monotonic()
        self._cancel_reason: str | None = None

    def progress(self, fraction: float, stage: str | None = None) -> None:
        """Progress of the service's own work, 0 to 1 (the SDK maps it into the ticket's); a
        new `stage` name is written to the ticket log once."""
        if stage and stage != self._stage:
            self._stage = stage
            self.log(stage)
        self._job.progress(RUN, fraction)

    def log(self, message: str, level: str = "info") -> None:
        """A line in the ticket log the user sees (info, warning or error)."""
        if level not in LEVELS:
            raise ValueError(f"log level must be one of {LEVELS}, got {level!r}")
        self._job.dss.call(DSSClient.log_message, self.ticket_id, level, message)

    def attach(self, path, description: str, mime: str = "application/octet-stream") -> None:
        """Send a file now; it is shown with the next log line."""
        self._job.dss.call(DSSClient.attach, self.ticket_id, Path(path), description, mime)

    def cancelled(self) -> bool:
        """True once the ticket was deleted or retried by its user (or claimed elsewhere), or
        this process is shutting down: return or raise Cancelled soon."""
        if self._job.stopping.is_set():
            self._cancel_reason = SHUTDOWN_REASON
        elif self._cancel_reason is None and \
                time.monotonic() - self._checked_at >= STATUS_CHECK_SECONDS:
            self._checked_at = time.monotonic()
            try:
                self._cancel_reason = lost_reason(
                    lambda: self._job.dss.call(DSSClient.provider_status, self.ticket_id))
            except DSSTransientError:   # a blip is not a cancel: asked again later
                pass
        return self._cancel_reason is not None

    def sleep(self, seconds: float) -> None:
        """Pause; raises Cancelled as soon as the ticket is cancelled or shutdown begins."""
        self._job.stopping.wait(seconds)
        if self.cancelled():
            raise Cancelled(self._cancel_reason)

    def retry(self, call: Callable[[], T], what: str) -> T:
        """`call()`, retried while it raises TransientError (or the client's transient
        errors) for up to DSS_RETRY_BUDGET s; a cancelled ticket stops the retrying."""
        def on_retry():
            metrics.RETRIES.labels(self._job.service.label, what).inc()
            if self.cancelled():
                raise Cancelled(self._cancel_reason)
        return retry(call, self._job.settings.retry_budget, what, sleep=self.sleep,
                     on_retry=on_retry)


def lost_reason(status_call: Callable[[], str]) -> str | None:
    """Why the ticket is no longer ours (None while it is `claimed`); a transient error is
    raised, not taken as a loss."""
    try:
        status = status_call()
    except DSSTransientError:
        raise
    except DSSError as exc:
        return f"the ticket is no longer accessible ({exc})"
    return None if status == "claimed" else f"the ticket is now {status!r}"
