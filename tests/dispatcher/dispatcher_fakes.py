"""In-process stand-ins for the DSS server as one TicketJob sees it, and the settings and
services to run one."""
from __future__ import annotations

import json
import shutil
import threading
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from dss_client.sdk.job import TicketJob
from dss_dispatcher.config import Config, ServiceSpec
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


def job_settings(work_dir: Path, **overrides) -> Config:
    values = dict(server_url="http://127.0.0.1:9", provider_token="t" * 48, provider_name="lab",
                  provider_code="node", workers=1, shared_datastore=None, metrics_port=0,
                  log_json=False, work_dir=work_dir, claim_wait=1.0, poll_interval=0.5,
                  retry_budget=1.0, inference_timeout=60.0)
    return Config(**{**values, **overrides})


class InferenceStub:
    """Answers like the inference server with `label` and an empty report; records the
    options (form fields) of each submitted job."""

    def __init__(self, label: bytes):
        self.forms: list[dict[str, str]] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.forms.append(_form_fields(self.headers["Content-Type"], body))
                model = self.path.split("/")[1]
                self.reply(200, json.dumps({"Endpoint": f"/{model}/jobs/j1"}).encode())

            def do_GET(self):
                if self.path.endswith("/report"):
                    report = {"nodules": []} if self.path.startswith("/nodule") else \
                        {"lungs": {"right_ml": 1.0, "left_ml": 1.0}}
                    self.reply(200, json.dumps(report).encode())
                else:
                    self.reply(200, label,
                               {"Content-Disposition": 'attachment; filename="l.nii.gz"'})

        self.server, self.url = serve_in_thread(Handler)

    @property
    def jobs(self) -> int:
        return len(self.forms)


def _form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The non-file fields of a multipart/form-data body."""
    message = BytesParser(policy=policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields = (part for part in message.iter_parts() if not part.get_filename())
    return {part.get_param("name", header="content-disposition"): part.get_content()
            for part in fields}


class FakeProviderSession:
    """The provider API of one claimed ticket whose download is `files` (or raises `download`)
    and whose parameters are `parameters`; every call is recorded as (name, *args), each
    uploaded file's bytes in `uploaded` by name."""

    def __init__(self, files: list[Path], download: Exception | None = None,
                 parameters: dict | None = None):
        self.files, self.download, self.calls = files, download, []
        self.parameters = parameters or {}
        self.uploaded: dict[str, bytes] = {}

    def call(self, method, *args, **kwargs):
        name = method.__name__   # a DSSClient method, as ProviderSession takes it
        self.calls.append((name, *args))
        if name == "provider_status":
            return "claimed"
        if name == "provider_parameters":
            return self.parameters
        if name == "upload_result":
            self.uploaded[args[1].name] = args[1].read_bytes()
        if name == "provider_download":
            if self.download:
                raise self.download
            return [Path(shutil.copy(f, args[1] / f.name)) for f in self.files]
        return "ok"

    call_once = call

    def named(self, name: str) -> list[tuple]:
        return [call[1:] for call in self.calls if call[0] == name]


def lung_job(settings: Config, spec: ServiceSpec, session, ticket_id: int, stopping) -> TicketJob:
    """The SDK's ticket job running the dispatcher's service for `spec`."""
    return TicketJob(settings, inference_service(spec, settings.inference_timeout), session,
                     ticket_id, stopping)


def lung_services(settings: Config) -> list:
    return [inference_service(spec, settings.inference_timeout) for spec in settings.services]
