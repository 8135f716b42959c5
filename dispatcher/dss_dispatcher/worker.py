"""One ticket, start to finish: download, inference, result workspace, upload, success.

Each stage reports chunked progress (its share of the ticket is in STAGES); between stages the
ticket's status is checked, so a user who deletes the ticket stops the work. Transient errors
are retried (retry.py); a permanent one fails the ticket with a message the user can act on.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

from dss_client import DSSError, DSSLocalError, DSSTransientError
from dss_client.workspace import Workspace, WorkspaceError

from . import metrics
from .config import ServiceSpec, Settings
from .inference import InferenceClient, InferenceFailed, JobLost, JobState
from .logs import ticket_var
from .results import build_result
from .retry import RETRYABLE, retry
from .session import ProviderSession
from .workdirs import LOCAL_FAULT_ERRNOS, create_locked, new_workdir, unwritable_reason

log = logging.getLogger(__name__)
STAGES = {"download": (0.0, 0.1), "inference": (0.1, 0.8), "workspace": (0.8, 0.9),
          "upload": (0.9, 1.0)}
POLL_FIRST, POLL_MAX = 0.1, 1.0   # seconds between job polls: quick for small jobs, then calmer
STATUS_CHECK_SECONDS = 2.0
SHUTDOWN_REASON = "the dispatcher is shutting down"


class Dropped(Exception):
    """Stop working on the ticket without touching it (deleted, no longer ours, shutdown)."""


class TicketFailed(Exception):
    """A permanent problem; the message is written to the ticket log for the user."""


class LocalFault(Exception):
    """This dispatcher's own scratch folder failed (full, read-only): not the ticket's fault,
    so the ticket goes back to the queue and the worker pauses."""


class TicketJob:
    def __init__(self, settings: Settings, spec: ServiceSpec, dss: ProviderSession,
                 ticket_id: int, stopping: threading.Event):
        self.settings, self.spec, self.dss, self.id = settings, spec, dss, ticket_id
        self.stopping = stopping
        self.workdir = new_workdir(settings.work_dir, ticket_id)
        self.workdir_lock: int | None = None   # held while the ticket runs (workdirs.py)
        self.timings: dict[str, float] = {}
        self.local_fault: str | None = None   # set when the ticket was released for one

    # ----- the whole ticket
    def run(self) -> str:
        """Process the ticket; returns the outcome: success, failed or dropped."""
        token = ticket_var.set(self.id)
        started = time.monotonic()
        try:
            self._run_stages_blaming_local_faults()
            outcome = "success"
        except Dropped as exc:
            log.info("dropping the ticket: %s", exc)
            if str(exc) == SHUTDOWN_REASON:
                self._hand_back(f"instance {self.settings.provider_code} is shutting down")
            outcome = "dropped"
        except LocalFault as exc:
            outcome = self._release_for_local_fault(str(exc))
        except TicketFailed as exc:
            outcome = self._fail(str(exc))
        except RETRYABLE as exc:
            outcome = self._fail(f"Gave up after {self.settings.retry_budget:g} s of retries: {exc}. "
                                 f"Retry the ticket later (dss retry {self.id}).")
        except DSSError as exc:
            outcome = self._after_refusal(exc)
        except Exception as exc:  # a bug must not kill the daemon, and the user must hear of it
            log.exception("unexpected error")
            outcome = self._fail(f"Internal error in the dispatcher ({type(exc).__name__}: {exc}). "
                                 "Retry the ticket; if it fails again, contact the provider.")
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            if self.workdir_lock is not None:
                os.close(self.workdir_lock)
            ticket_var.reset(token)
        metrics.TICKETS.labels(self.spec.label, outcome).inc()
        metrics.TICKET_SECONDS.labels(self.spec.label, outcome).observe(time.monotonic() - started)
        return outcome

    def _run_stages(self) -> None:
        self.workdir_lock = create_locked(self.workdir)
        self.dss.call("set_progress", self.id, 0.0, 1.0, 0.0)   # clears an earlier attempt's
        inputs = self._stage("download", self._download)
        workspace, layer = inputs
        result = self._stage("inference", lambda: self._inference(layer.path))
        files, attachments, summary = self._stage(
            "workspace", lambda: build_result(workspace, layer.path, *result, self.spec.output,
                                              self.id, self.workdir))
        self._stage("upload", lambda: self._upload(files, attachments, summary))
        self.dss.call("set_status", self.id, "success")
        steps = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.timings.items())
        log.info("success (%s): %s", steps, summary, extra={"timings": dict(self.timings)})

    def _run_stages_blaming_local_faults(self) -> None:
        """A failure caused by this machine's scratch folder is raised as LocalFault, whatever
        it surfaced as (an OSError, the client's DSSLocalError, SimpleITK failing to write)."""
        try:
            self._run_stages()
        except (Dropped, TicketFailed, *RETRYABLE):
            raise
        except Exception as exc:
            reason = _local_fault_reason(exc) or unwritable_reason(self.settings.work_dir)
            if reason:
                raise LocalFault(reason) from exc
            raise

    def _release_for_local_fault(self, reason: str) -> str:
        log.error("the scratch folder failed (%s): releasing the ticket; this worker pauses "
                  "until the folder can be written again", reason)
        self.local_fault = reason
        self._hand_back(f"instance {self.settings.provider_code} cannot store files on its "
                        "scratch disk (full or read-only)")
        return "released"

    def _stage(self, name: str, work):
        if self.stopping.is_set():
            raise Dropped(SHUTDOWN_REASON)
        self._check_claimed()
        started = time.monotonic()
        result = work()
        self._progress(name, 1.0)
        self.timings[name] = time.monotonic() - started
        metrics.STAGE_SECONDS.labels(self.spec.label, name).observe(self.timings[name])
        return result

    def _after_refusal(self, exc: DSSError) -> str:
        """The server refused a write: usually the ticket was deleted or its claim expired."""
        try:
            self._check_claimed()
        except Dropped as reason:
            log.info("dropping the ticket: %s", reason)
            return "dropped"
        except DSSTransientError:
            pass
        return self._fail(f"The DSS server refused a request of the dispatcher: {exc}")

    def _check_claimed(self) -> None:
        try:
            status = self.dss.call("provider_status", self.id)
        except DSSTransientError:
            raise
        except DSSError as exc:
            raise Dropped(f"the ticket is no longer accessible ({exc})") from None
        if status != "claimed":
            raise Dropped(f"the ticket is now {status!r}")

    def _progress(self, stage: str, fraction: float) -> None:
        start, end = STAGES[stage]
        self.dss.call("set_progress", self.id, start, end, round(min(max(fraction, 0.0), 1.0), 4))

    def _hand_back(self, reason: str) -> None:
        """Shutting down or unable to work: release the ticket so that it is `ready` again at
        once. One try only; whatever goes wrong, the server's claim lease re-queues it."""
        try:
            self.dss.call_once("release", self.id, reason)
            log.info("released the ticket back to the queue")
        except DSSTransientError as exc:
            log.warning("could not release the ticket (%s); its claim lease will re-queue it", exc)
        except DSSError as exc:
            if _route_missing(exc):
                self._note_shutdown()
            else:   # no longer ours (deleted, requeued): nothing to hand back
                log.info("did not release the ticket: %s", exc)

    def _note_shutdown(self) -> None:
        """An older server without the release route: the claim lease re-queues the ticket."""
        try:
            self.dss.call_once("log_message", self.id, "warning",
                               f"Provider instance {self.settings.provider_code} stopped before "
                               "finishing; the ticket goes back to the queue when its claim "
                               "lease expires.")
        except DSSError as exc:
            log.warning("could not tell the user about the shutdown: %s", exc)

    def _fail(self, message: str) -> str:
        log.warning("failing the ticket: %s", message)
        try:
            self.dss.call("log_message", self.id, "error", message)
            self.dss.call("set_status", self.id, "failed")
        except DSSError as exc:
            log.warning("could not mark the ticket failed: %s", exc)
        return "failed"

    # ----- stages
    def _download(self) -> tuple[Workspace, object]:
        target = self.workdir / "input"
        target.mkdir(parents=True, exist_ok=True)
        files = self._copy_from_shared_datastore(target) or \
            self.dss.call("provider_download", self.id, target)
        workspaces = [f for f in files if f.name.endswith(".itksnap")]
        if not workspaces:
            raise TicketFailed("The ticket holds no ITK-SNAP workspace (.itksnap file). Submit it "
                               "with ITK-SNAP, itksnap-wt or `dss submit`.")
        try:
            # layers resolve only inside the ticket's own input folder: a layer path naming
            # another file on this host (another ticket's CT) must never be read or returned
            workspace = Workspace.load_received(workspaces[0])
            layer = workspace.find_layer(self.spec.input_tag or None)
        except (WorkspaceError, OSError) as exc:
            raise TicketFailed(f"The submitted workspace cannot be read: {exc}") from None
        for missing in (each for each in workspace.layers if not each.path.is_file()):
            raise TicketFailed(f"The image of layer {missing.key} ({missing.path.name}) was not "
                               "uploaded with the workspace. Submit the ticket again.")
        try:   # before ITK reads a voxel: a header may name another file as its data
            workspace.check_layer_files()
        except WorkspaceError as exc:
            raise TicketFailed(f"The submitted workspace cannot be used: {exc}.") from None
        how = f"tag {self.spec.input_tag}" if self.spec.input_tag in layer.tags else "main image"
        self.dss.call("log_message", self.id, "info",
                      f"Files received: {len(files)} files; processing {layer.path.name} ({how}).")
        return workspace, layer

    def _copy_from_shared_datastore(self, target: Path) -> list[Path] | None:
        """The optional fast path: read the input straight from the server's datastore."""
        if self.settings.shared_datastore is None:
            return None
        source = self.settings.shared_datastore / "tickets" / f"{self.id:08d}" / "input"
        if not source.is_dir():
            return None
        copied = []
        for path in sorted(source.iterdir()):
            if path.is_file() and not path.is_symlink() and not path.name.endswith(".part"):
                copied.append(Path(shutil.copy2(path, target / path.name)))
        if copied:
            log.info("input copied from the shared datastore %s", self.settings.shared_datastore)
        return copied or None

    def _inference(self, image: Path) -> tuple[Path, dict]:
        client = InferenceClient(self.spec.inference_url, self.spec.endpoint)
        try:
            return retry(lambda: self._run_job(client, image), self.settings.retry_budget,
                         "inference", sleep=self._wait_to_retry, on_retry=self._inference_retry)
        except InferenceFailed as exc:
            log.warning("the inference server refused %s: %s", image.name, exc.detail)
            raise TicketFailed(f"The image {image.name} could not be processed: {exc}") from None
        finally:
            client.close()

    def _run_job(self, client: InferenceClient, image: Path) -> tuple[Path, dict]:
        job = client.submit(image)
        log.info("inference job %s", job)
        deadline = time.monotonic() + self.settings.inference_timeout
        last_check = time.monotonic()
        pause, posted, posted_at = POLL_FIRST, None, 0.0
        try:
            while True:
                state = client.poll(job, self.workdir / "inference")
                if not isinstance(state, JobState):
                    return state, client.report(job)
                if state.progress != posted or time.monotonic() - posted_at > STATUS_CHECK_SECONDS:
                    self._progress("inference", state.progress)   # also renews the claim lease
                    posted, posted_at = state.progress, time.monotonic()
                if time.monotonic() > deadline:
                    raise TicketFailed(f"Inference took longer than "
                                       f"{self.settings.inference_timeout:g} s and was stopped.")
                if time.monotonic() - last_check > STATUS_CHECK_SECONDS:
                    self._check_claimed()
                    last_check = time.monotonic()
                # a shutdown does not wait for a long job: it is cancelled below and the
                # ticket released, so that another instance starts it at once
                if self.stopping.wait(pause):
                    raise Dropped(SHUTDOWN_REASON)
                pause = min(POLL_MAX, pause * 1.5)
        except JobLost:
            raise
        except BaseException:
            client.cancel(job)
            raise

    def _inference_retry(self) -> None:
        """While the inference server is unavailable, a cancelled ticket stops the waiting."""
        metrics.RETRIES.labels(self.spec.label, "inference").inc()
        self._check_claimed()

    def _wait_to_retry(self, seconds: float) -> None:
        """A stage waiting for a service to come back does not hold up a shutdown."""
        if self.stopping.wait(seconds):
            raise Dropped(SHUTDOWN_REASON)

    def _upload(self, files: list[Path], attachments, summary: str) -> None:
        # layers first, the workspace last: a reader that sees the workspace finds its layers
        ordered = files[1:] + files[:1]
        total = sum(f.stat().st_size for f in ordered) or 1
        sent = 0
        for path in ordered:
            self.dss.call("upload_result", self.id, path)
            sent += path.stat().st_size
            self._progress("upload", sent / total)
        for path, description, mime in attachments:
            self.dss.call("attach", self.id, path, description, mime)
        # the attachments are linked to this message (the server links unlinked ones)
        self.dss.call("log_message", self.id, "info", summary)


def _route_missing(exc: DSSError) -> bool:
    """A server older than the release route: 404/405, or our own older server, whose
    `/api/pro/tickets/<id>/<category>` route takes `release` for an unknown log category."""
    return exc.status in (404, 405) or (exc.status == 400 and "log category" in exc.body)


def _local_fault_reason(exc: Exception) -> str | None:
    """The scratch disk's error, when `exc` is one (disk full, read-only, no permission)."""
    if isinstance(exc, DSSLocalError) or (isinstance(exc, OSError)
                                          and exc.errno in LOCAL_FAULT_ERRNOS):
        return str(exc)
    return None
