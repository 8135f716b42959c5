"""DSSClient: the one client of the DSS REST API (user, provider and admin sides).

Every call maps to one route of the wire protocol (../shared/dss-protocol.md, sections c.1-c.6
and h.1). Bodies are parsed in `wire`; anything but HTTP 200 raises `DSSError`, and what is worth
retrying (no connection, timeouts, 5xx) raises `DSSTransientError`.
"""
from __future__ import annotations

import mimetypes
import re
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from . import wire
from .errors import DSSError
from .imagefiles import CONVERT_DICOM
from .transport import Transport
from .wire import (
    AdminTicket,
    Attachment,
    AvailableService,
    Claim,
    FileEntry,
    LogEntry,
    ProviderService,
    ProviderUser,
    Service,
    Ticket,
)

if TYPE_CHECKING:
    from .workspace import Workspace

CLAIM_WAIT_MARGIN = 30.0
_GITHASH = re.compile(r"[0-9a-f]{40}")
_BLOB_PATH = re.compile(r"/blobs/[0-9a-fA-F]{8}([0-9a-fA-F]{24})?")


def _blob_path(url: str) -> str:
    """The `/blobs/<id>` path of an attachment link, asked of this client's own server (the
    link's host is the server's public name, which need not be reachable from here)."""
    path = urllib.parse.urlsplit(url).path
    if not _BLOB_PATH.fullmatch(path):
        raise DSSError(None, f"unexpected attachment link from server: {url!r}")
    return path.lstrip("/")


def _attachment_name(attachment: Attachment) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "-", attachment.description).strip("-").lower()[:60]
    extension = mimetypes.guess_extension(attachment.mime_type.split(";")[0].strip()) or ""
    return f"{attachment.id}-{words or 'attachment'}{extension}"


def _submittable(source: Path) -> None:
    """A file to submit must be a plain file; say what else it is."""
    if source.is_dir():
        raise IsADirectoryError(f"{source} is a folder, not an image or an .itksnap workspace: "
                                f"if it holds a DICOM series, {CONVERT_DICOM}")
    if not source.is_file():
        raise FileNotFoundError(f"no such file: {source}")


def load_submission(workspace_or_image: str | Path) -> "Workspace":
    """The workspace to submit for an .itksnap file or an image, with every image checked: a file
    that is no image fails here, before a ticket exists."""
    from .workspace import Workspace

    source = Path(workspace_or_image)
    _submittable(source)
    workspace = (Workspace.load(source) if source.suffix == ".itksnap"
                 else Workspace.for_image(source))
    workspace.check_images()
    return workspace


def _ids(githashes: str | Iterable[str]) -> str:
    return githashes if isinstance(githashes, str) else ",".join(githashes)


class DSSClient(Transport):
    """The DSS API: one method per route, answers parsed by `wire`."""

    def _download_area(self, prefix: str, dest_dir: str | Path) -> list[Path]:
        entries = wire.parse_files(self._get(prefix))
        return self._download_all([(f"{prefix}/{entry.index}", entry.name) for entry in entries],
                                  dest_dir)

    # -- the server itself -------------------------------------------------------------------

    def health(self) -> str:
        """`/healthz`: "ok" when the server process answers (it reads no database)."""
        return wire.parse_text(self._get("healthz"))

    # -- authentication ----------------------------------------------------------------------

    def login(self, token: str) -> str:
        """Log in with a login or provider token; returns the user's e-mail."""
        return wire.parse_login(self._post("api/login", token=token.strip()))

    def whoami(self) -> str:
        return wire.parse_login(self._get("api/login"))

    # -- user: services and tickets ----------------------------------------------------------

    def services(self) -> list[Service]:
        return wire.parse_services(self._get("api/services"))

    def service_detail(self, githash: str) -> dict:
        return wire.parse_json(self._get(f"api/services/{githash}/detail"))

    def service_stats(self, githash: str) -> dict:
        return wire.parse_stats(self._get(f"api/services/{githash}/stats", format="json"))

    def create_ticket(self, service: str) -> int:
        """New ticket for a service given by githash (40 hex) or by name (highest version)."""
        key = "githash" if _GITHASH.fullmatch(service) else "name"
        return wire.parse_int(self._post("api/tickets", **{key: service}), "ticket id")

    def upload_input(self, ticket_id: int, path: str | Path) -> str:
        return wire.parse_text(self._upload(f"api/tickets/{ticket_id}/files/input", Path(path)))

    def mark_ready(self, ticket_id: int) -> str:
        return wire.parse_text(self._post(f"api/tickets/{ticket_id}/status", status="ready"))

    def submit_workspace(self, workspace_or_image: "str | Path | Workspace", service: str,
                         on_upload: Callable[[Path], None] | None = None,
                         parameters: dict | None = None) -> int:
        """Create a ticket, upload the exported workspace (an image gets one made), mark it ready.

        `workspace_or_image` is a path, or a Workspace from `load_submission` (already checked).
        `parameters` (name: value) are added to those the workspace stores; the server checks
        them against the service's declaration when the ticket is marked ready. The workspace
        carries the scan's file name, as the export renames every layer.

        `on_upload(path)` is called before each file is sent (the command line shows it). The
        ticket is deleted again if anything fails before it is ready, so no `init` ticket is
        left counting against the user's open-ticket limit.
        """
        workspace = (load_submission(workspace_or_image) if isinstance(workspace_or_image, (str, Path))
                     else workspace_or_image)
        workspace.parameters = {**workspace.parameters, **(parameters or {})}
        if not workspace.scan_name:
            workspace.scan_name = (workspace.path or workspace.main_layer().path).name
        ticket_id = self.create_ticket(service)
        try:
            with tempfile.TemporaryDirectory(prefix="dss_export_") as export_dir:
                for file in workspace.export(export_dir, f"ticket_{ticket_id:08d}"):
                    if on_upload:
                        on_upload(file)
                    self.upload_input(ticket_id, file)
            self.mark_ready(ticket_id)
        except BaseException:
            try:
                self.delete(ticket_id)
            except DSSError:
                pass
            raise
        return ticket_id

    def ticket_summaries(self) -> list[dict]:
        """The tickets with their scan's name and creation time (project extension); from a
        server without it (the original middleware), the wire list's id, service and status."""
        try:
            return wire.parse_json(self._get("api/tickets/summary"))
        except DSSError as exc:
            if exc.status not in (400, 404, 405):
                raise
        return [ticket._asdict() for ticket in self.tickets()]

    def ticket_parameters(self, ticket_id: int) -> dict:
        """The ticket's parameter values, typed (project extension)."""
        return wire.parse_json(self._get(f"api/tickets/{ticket_id}/parameters"))

    def tickets(self) -> list[Ticket]:
        return wire.parse_tickets(self._get("api/tickets"))

    def status(self, ticket_id: int) -> str:
        return wire.parse_text(self._get(f"api/tickets/{ticket_id}/status"))

    def progress(self, ticket_id: int) -> float:
        return wire.parse_float(self._get(f"api/tickets/{ticket_id}/progress"), "progress")

    def queue_position(self, ticket_id: int) -> int:
        return wire.parse_int(self._get(f"api/tickets/{ticket_id}/queuepos"), "queue position")

    def detail(self, ticket_id: int, since: int = 0) -> dict:
        return wire.parse_result(self._get(f"api/tickets/{ticket_id}/detail", since=since))

    def log(self, ticket_id: int, since: int = 0) -> list[LogEntry]:
        return wire.parse_log(self._get(f"api/tickets/{ticket_id}/log", since=since))

    def log_attachments(self, log_id: int) -> list[Attachment]:
        return wire.parse_attachments(self._get(f"api/tickets/logs/{log_id}/attachments"))

    def files(self, ticket_id: int, area: str = "results") -> list[FileEntry]:
        return wire.parse_files(self._get(f"api/tickets/{ticket_id}/files/{area}"))

    def download(self, ticket_id: int, area: str, dest_dir: str | Path) -> list[Path]:
        return self._download_area(f"api/tickets/{ticket_id}/files/{area}", dest_dir)

    def download_attachments(self, ticket_id: int, dest_dir: str | Path) -> list[Path]:
        """Every attachment of the ticket's log (reports, previews) into `dest_dir`, named
        `<id>-<description><extension of its type>`; the folder is made only when there are any."""
        attachments = [attachment for entry in self.log(ticket_id) if entry.attachments
                       for attachment in self.log_attachments(entry.id)]
        return self._download_all([(_blob_path(a.url), _attachment_name(a)) for a in attachments],
                                  dest_dir)

    def delete(self, ticket_id: int) -> str:
        return wire.parse_text(self._get(f"api/tickets/{ticket_id}/delete"))

    def retry(self, ticket_id: int) -> str:
        return wire.parse_text(self._get(f"api/tickets/{ticket_id}/retry"))

    # -- provider ----------------------------------------------------------------------------

    def provider_services(self) -> list[ProviderService]:
        return wire.parse_provider_services(self._get("api/pro/services"))

    def claim(self, githashes: str | Iterable[str], provider: str, code: str = "default",
              wait: float | None = None) -> Claim | None:
        """Claim the oldest ready ticket of these services, or None.

        With `wait`, the server holds the request up to that many seconds until one is ready.
        """
        form = {"services": _ids(githashes), "provider": provider, "code": code}
        read_timeout = None
        if wait:
            form["wait"] = f"{wait:g}"
            read_timeout = max(self.timeout, wait + CLAIM_WAIT_MARGIN)
        return wire.parse_claim(self._text("POST", "api/pro/services/claims", form=form,
                                           read_timeout=read_timeout))

    def available(self, githashes: str | Iterable[str]) -> list[AvailableService]:
        return wire.parse_available(self._post("api/pro/services/available",
                                               services=_ids(githashes)))

    def provider_files(self, ticket_id: int, area: str = "input") -> list[FileEntry]:
        return wire.parse_files(self._get(f"api/pro/tickets/{ticket_id}/files/{area}"))

    def provider_download(self, ticket_id: int, dest_dir: str | Path) -> list[Path]:
        return self._download_area(f"api/pro/tickets/{ticket_id}/files/input", dest_dir)

    def upload_result(self, ticket_id: int, path: str | Path) -> str:
        return wire.parse_text(self._upload(f"api/pro/tickets/{ticket_id}/files/results",
                                            Path(path)))

    def set_progress(self, ticket_id: int, start: float, end: float, value: float) -> str:
        return wire.parse_text(self._post(f"api/pro/tickets/{ticket_id}/progress",
                                          chunk_start=float(start), chunk_end=float(end),
                                          progress=float(value)))

    def log_message(self, ticket_id: int, category: str, message: str) -> int:
        """Append `info`, `warning` or `error` to the ticket log; returns the log id."""
        answer = self._post(f"api/pro/tickets/{ticket_id}/{category}", message=message)
        return wire.parse_int(answer, "log id")

    def attach(self, ticket_id: int, path: str | Path, description: str,
               mime_type: str | None = None) -> int:
        """Attach a file; it is linked to the next log message. Returns the attachment id."""
        fields = {"desc": description, **({"mime_type": mime_type} if mime_type else {})}
        return wire.parse_int(self._upload(f"api/pro/tickets/{ticket_id}/attachments", Path(path),
                                           **fields), "attachment id")

    def provider_parameters(self, ticket_id: int) -> dict:
        """The claimed ticket's parameter values, typed (project extension)."""
        return wire.parse_json(self._get(f"api/pro/tickets/{ticket_id}/parameters"))

    def set_status(self, ticket_id: int, status: str) -> str:
        return wire.parse_text(self._post(f"api/pro/tickets/{ticket_id}/status", status=status))

    def provider_status(self, ticket_id: int) -> str:
        return wire.parse_text(self._get(f"api/pro/tickets/{ticket_id}/status"))

    def release(self, ticket_id: int, message: str = "") -> str:
        """Hand a claimed ticket back to the queue (our server's extension); returns `ready`.
        A server without the route answers 404 (DSSError)."""
        form = {"message": message} if message else {}
        return wire.parse_text(self._post(f"api/pro/tickets/{ticket_id}/release", **form))

    # -- admin -------------------------------------------------------------------------------

    def providers(self) -> list[str]:
        return wire.parse_names(self._get("api/admin/providers"))

    def add_provider(self, name: str) -> str:
        return wire.parse_text(self._post("api/admin/providers", name=name))

    def delete_provider(self, name: str) -> str:
        return wire.parse_text(self._get(f"api/admin/providers/{name}/delete"))

    def provider_users(self, provider: str) -> list[ProviderUser]:
        return wire.parse_provider_users(self._get(f"api/admin/providers/{provider}/users"))

    def add_provider_user(self, provider: str, email: str, admin: bool = False) -> str:
        return wire.parse_text(self._post(f"api/admin/providers/{provider}/users",
                                          email=email, admin=int(admin)))

    def remove_provider_user(self, provider: str, user_id: int) -> str:
        return wire.parse_text(self._get(f"api/admin/providers/{provider}/users/{user_id}/delete"))

    def provider_service_list(self, provider: str) -> list[Service]:
        return wire.parse_admin_services(self._get(f"api/admin/providers/{provider}/services"))

    def register_service(self, provider: str, repo: str, ref: str = "") -> str:
        """Register the service.json of a git repo at `ref`; returns its githash."""
        return wire.parse_text(self._post(f"api/admin/providers/{provider}/services",
                                          repo=repo, ref=ref))

    def retire_service(self, provider: str, githash: str) -> str:
        return wire.parse_text(
            self._get(f"api/admin/providers/{provider}/services/{githash}/delete"))

    def admin_tickets(self) -> list[AdminTicket]:
        return wire.parse_admin_tickets(self._get("api/admin/tickets"))

    def purge(self, scope: str, days: float | None = None, hours: float | None = None) -> str:
        """Delete `completed` (or `all`) tickets older than days/hours (server default 7 days)."""
        form = {key: value for key, value in (("days", days), ("hours", hours))
                if value is not None}
        return wire.parse_text(self._post(f"api/admin/tickets/purge/{scope}", **form))

    def issue_token(self, email: str, reusable: bool = True) -> str:
        """A token for `email` (created if new): reusable (a provider's) or single-use (a login).

        Project extension `POST /api/admin/tokens`.
        """
        return wire.parse_text(self._post("api/admin/tokens", email=email, reusable=int(reusable)))

