"""One ticket, start to finish: download, the service's function, result workspace, upload,
success.

Each stage reports its share of the progress (STAGES); between stages the ticket's status is
checked, so a user who deletes or retries the ticket stops the work. Transient errors are
retried (retry.py); a permanent one fails the ticket with a message the user can act on.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

from .. import DSSClient, DSSError, DSSLocalError, DSSTransientError, TransientError
from ..workspace import Workspace, WorkspaceError
from . import metrics
from .config import Settings
from .context import RUN, SHUTDOWN_REASON, Cancelled, Context, TicketFailed, lost_reason
from .logs import ticket_var
from .result import Result
from .service import Service
from .session import ProviderSession
from .workdirs import LOCAL_FAULT_ERRNOS, create_locked, new_workdir, unwritable_reason

log = logging.getLogger(__name__)
STAGES = {"download": (0.0, 0.1), RUN: (0.1, 0.8), "workspace": (0.8, 0.9), "upload": (0.9, 1.0)}


class LocalFault(Exception):
    """This provider's own scratch folder failed (full, read-only): not the ticket's fault,
    so the ticket goes back to the queue and the worker pauses."""


class TicketJob:
    def __init__(self, settings: Settings, service: Service, dss: ProviderSession,
                 ticket_id: int, stopping: threading.Event):
        self.settings, self.service, self.dss, self.id = settings, service, dss, ticket_id
        self.stopping = stopping
        self.workdir = new_workdir(settings.work_dir, ticket_id)
        self.workdir_lock: int | None = None   # held while the ticket runs (workdirs.py)
        self.timings: dict[str, float] = {}
        self.local_fault: str | None = None   # set when the ticket was released for one

    # ----- the whole ticket
    def run(self) -> str:
        """Process the ticket; returns the outcome: success, failed, released or dropped."""
        token = ticket_var.set(self.id)
        started = time.monotonic()
        try:
            self._run_stages_blaming_local_faults()
            outcome = "success"
        except Cancelled as exc:
            log.info("dropping the ticket: %s", exc)
            if self.stopping.is_set():
                self._hand_back(f"instance {self.settings.provider_code} is shutting down")
            outcome = "dropped"
        except LocalFault as exc:
            outcome = self._release_for_local_fault(str(exc))
        except TicketFailed as exc:
            outcome = self._fail(str(exc))
        except TransientError as exc:
            outcome = self._fail(f"Gave up after {self.settings.retry_budget:g} s of retries: {exc}. "
                                 f"Retry the ticket later (dss retry {self.id}).")
        except DSSError as exc:
            outcome = self._after_refusal(exc)
        except Exception as exc:  # a bug must not kill the daemon, and the user must hear of it
            log.exception("unexpected error")
            outcome = self._fail(f"Internal error in the provider ({type(exc).__name__}: {exc}). "
                                 "Retry the ticket; if it fails again, contact the provider.")
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            if self.workdir_lock is not None:
                os.close(self.workdir_lock)
            ticket_var.reset(token)
        metrics.TICKETS.labels(self.service.label, outcome).inc()
        metrics.TICKET_SECONDS.labels(self.service.label, outcome).observe(time.monotonic() - started)
        return outcome

    def _run_stages(self) -> None:
        self.workdir_lock = create_locked(self.workdir)
        self.dss.call(DSSClient.set_progress, self.id, 0.0, 1.0, 0.0)   # clears an earlier attempt's
        workspace, layer = self._stage("download", self._download)
        result = self._stage(RUN, lambda: self._run_service(workspace, layer.path))
        if not isinstance(result, Result):
            raise TypeError(f"the service returned {type(result).__name__}, not a Result")
        files, attachments, summary = self._stage(
            "workspace", lambda: result.write(workspace, layer.path, self.workdir, self.id))
        self._stage("upload", lambda: self._upload(files, attachments, summary))
        self.dss.call(DSSClient.set_status, self.id, "success")
        steps = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.timings.items())
        log.info("success (%s): %s", steps, summary, extra={"timings": dict(self.timings)})

    def _run_service(self, workspace: Workspace, image: Path):
        scratch = self.workdir / "scratch"
        scratch.mkdir()
        return self.service(Context(self, image, scratch, self._parameters()), workspace)

    def _parameters(self) -> dict:
        """The ticket's parameters (once: they cannot change). A server without our parameters
        route (the original itksnap-dss-server answers 404) stores none: the service's
        declared defaults stand in, as they would for a ticket that set none."""
        try:
            return self.dss.call(DSSClient.provider_parameters, self.id)
        except DSSError as exc:
            if exc.status != 404:
                raise
            log.warning("the server keeps no ticket parameters (%s): using the defaults of %s",
                        exc, self.service.descriptor or "the service (none declared)")
        return self.service.default_parameters()

    def _run_stages_blaming_local_faults(self) -> None:
        """A failure caused by this machine's scratch folder is raised as LocalFault, whatever
        it surfaced as (an OSError, the client's DSSLocalError, SimpleITK failing to write)."""
        try:
            self._run_stages()
        except (Cancelled, TicketFailed, TransientError):
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
            raise Cancelled(SHUTDOWN_REASON)
        self._check_claimed()
        started = time.monotonic()
        result = work()
        self.progress(name, 1.0)
        label = self.service.stage if name == RUN else name
        self.timings[label] = time.monotonic() - started
        metrics.STAGE_SECONDS.labels(self.service.label, label).observe(self.timings[label])
        return result

    def _after_refusal(self, exc: DSSError) -> str:
        """The server refused a write (409): usually the ticket was deleted, retried or its
        claim expired."""
        try:
            self._check_claimed()
        except Cancelled as reason:
            log.info("dropping the ticket: %s", reason)
            return "dropped"
        except DSSTransientError:
            pass
        return self._fail(f"The DSS server refused a request of the provider: {exc}")

    def _check_claimed(self) -> None:
        reason = lost_reason(lambda: self.dss.call(DSSClient.provider_status, self.id))
        if reason:
            raise Cancelled(reason)

    def progress(self, stage: str, fraction: float) -> None:
        start, end = STAGES[stage]
        self.dss.call(DSSClient.set_progress, self.id, start, end,
                      round(min(max(fraction, 0.0), 1.0), 4))

    def _hand_back(self, reason: str) -> None:
        """Shutting down or unable to work: release the ticket so that it is `ready` again at
        once. One try only; whatever goes wrong, the server's claim lease re-queues it."""
        try:
            self.dss.call_once(DSSClient.release, self.id, reason)
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
            self.dss.call_once(DSSClient.log_message, self.id, "warning",
                               f"Provider instance {self.settings.provider_code} stopped before "
                               "finishing; the ticket goes back to the queue when its claim "
                               "lease expires.")
        except DSSError as exc:
            log.warning("could not tell the user about the shutdown: %s", exc)

    def _fail(self, message: str) -> str:
        log.warning("failing the ticket: %s", message)
        try:
            self.dss.call(DSSClient.log_message, self.id, "error", message)
            self.dss.call(DSSClient.set_status, self.id, "failed")
        except DSSError as exc:
            log.warning("could not mark the ticket failed: %s", exc)
        return "failed"

    # ----- stages
    def _download(self) -> tuple[Workspace, object]:
        target = self.workdir / "input"
        target.mkdir(parents=True, exist_ok=True)
        files = self._copy_from_shared_datastore(target) or \
            self.dss.call(DSSClient.provider_download, self.id, target)
        workspaces = [f for f in files if f.name.endswith(".itksnap")]
        if not workspaces:
            raise TicketFailed("The ticket holds no ITK-SNAP workspace (.itksnap file). Submit it "
                               "with ITK-SNAP, itksnap-wt or `dss submit`.")
        try:
            # layers resolve only inside the ticket's own input folder: a layer path naming
            # another file on this host (another ticket's CT) must never be read or returned
            workspace = Workspace.load_received(workspaces[0])
            layer = workspace.find_layer(self.service.input_tag or None)
        except (WorkspaceError, OSError) as exc:
            raise TicketFailed(f"The submitted workspace cannot be read: {exc}") from None
        for missing in (each for each in workspace.layers if not each.path.is_file()):
            raise TicketFailed(f"The image of layer {missing.key} ({missing.path.name}) was not "
                               "uploaded with the workspace. Submit the ticket again.")
        try:   # before ITK reads a voxel: a header may name another file as its data
            workspace.check_layer_files()
        except WorkspaceError as exc:
            raise TicketFailed(f"The submitted workspace cannot be used: {exc}.") from None
        how = f"tag {self.service.input_tag}" if self.service.input_tag in layer.tags else "main image"
        self.dss.call(DSSClient.log_message, self.id, "info",
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

    def _upload(self, files: list[Path], attachments, summary: str) -> None:
        # layers first, the workspace last: a reader that sees the workspace finds its layers
        ordered = files[1:] + files[:1]
        total = sum(f.stat().st_size for f in ordered) or 1
        sent = 0
        for path in ordered:
            self.dss.call(DSSClient.upload_result, self.id, path)
            sent += path.stat().st_size
            self.progress("upload", sent / total)
        for path, description, mime in attachments:
            self.dss.call(DSSClient.attach, self.id, path, description, mime)
        # the attachments are linked to this message (the server links unlinked ones)
        self.dss.call(DSSClient.log_message, self.id, "info", summary)


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
