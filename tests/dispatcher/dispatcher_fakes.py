"""In-process stand-ins for the DSS server as one TicketJob sees it, and the settings and
services to run one."""
from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from dss_client.sdk.job import TicketJob
from dss_dispatcher.config import ServiceSpec, Settings
from dss_dispatcher.worker import inference_service

SPEC = ServiceSpec("LungSegmentation", "/lung_segmentation/inference", "http://127.0.0.1:9",
                   "lungs", "", "lab")


class QuietHandler(BaseHTTPRequestHandler):
    """A fake server's request handler: `reply` answers with a body, nothing is logged."""

    def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def session_cookie(value: str | None) -> dict[str, str]:
    return {"Set-Cookie": f"webpy_session_id={value}; Path=/"} if value else {}


def serve_in_thread(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """A loopback HTTP server answering with `handler` on a free port, and its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def job_settings(work_dir: Path, **overrides) -> Settings:
    values = dict(server_url="http://127.0.0.1:9", provider_token="t" * 48, provider_name="lab",
                  provider_code="node", workers=1, shared_datastore=None, metrics_port=0,
                  log_json=False, work_dir=work_dir, claim_wait=1.0, poll_interval=0.5,
                  retry_budget=1.0, inference_timeout=60.0)
    return Settings(**{**values, **overrides})


class FakeProviderSession:
    """The provider API of one claimed ticket whose download is `files` (or raises `download`);
    every call is recorded as (name, *args)."""

    def __init__(self, files: list[Path], download: Exception | None = None):
        self.files, self.download, self.calls = files, download, []

    def call(self, name, *args, **kwargs):
        self.calls.append((name, *args))
        if name == "provider_status":
            return "claimed"
        if name == "provider_download":
            if self.download:
                raise self.download
            return [Path(shutil.copy(f, args[1] / f.name)) for f in self.files]
        return "ok"

    call_once = call

    def named(self, name: str) -> list[tuple]:
        return [call[1:] for call in self.calls if call[0] == name]


def lung_job(settings: Settings, spec: ServiceSpec, session, ticket_id: int, stopping) -> TicketJob:
    """The SDK's ticket job running the dispatcher's service for `spec`."""
    return TicketJob(settings, inference_service(spec, settings.inference_timeout), session,
                     ticket_id, stopping)


def lung_services(settings: Settings) -> list:
    return [inference_service(spec, settings.inference_timeout) for spec in settings.services]
