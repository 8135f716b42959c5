"""SIGTERM mid-ticket: the job finishes its current stage (the download), then releases the
ticket with a message and removes its scratch folder; against a server without the release
route it falls back to a warning in the ticket log (the claim lease re-queues the ticket).

The server is a real HTTP server on loopback that answers like the DSS server and records every
request; the whole-stack version (real web server, SIGTERM to a real process) is in tests/e2e."""
from __future__ import annotations

import re
import threading
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import pytest
import SimpleITK as sitk

from dispatcher_fakes import QuietHandler, job_settings, lung_job, serve_in_thread, session_cookie
from dss_client.sdk.session import ProviderSession
from dss_client.workspace import Workspace
from dss_dispatcher.config import ServiceSpec

TICKET = 7
FILES = re.compile(rf"^/api/pro/tickets/{TICKET}/files/input/(\d+)$")


class ProviderServer:
    """Serves ticket 7's input workspace; `release_answer` is what the release route answers.
    Serving the last input file sets `stopping`, as a SIGTERM arriving mid-download would."""

    def __init__(self, inputs: list[Path], stopping: threading.Event,
                 release_answer: tuple[int, str]):
        self.requests: list[tuple[str, str, dict]] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                outer.requests.append(("POST", self.path, form))
                if self.path == "/api/login":
                    self._send(200, b"logged in as robot@lab", cookie="a" * 40)
                elif self.path == f"/api/pro/tickets/{TICKET}/release":
                    self._send(release_answer[0], release_answer[1].encode())
                elif self.path.endswith("/progress"):
                    self._send(200, b"success")
                else:   # a log line
                    self._send(200, b"12")

            def do_GET(self):
                outer.requests.append(("GET", self.path, {}))
                found = FILES.match(self.path)
                if self.path == f"/api/pro/tickets/{TICKET}/status":
                    self._send(200, b"claimed")
                elif self.path == f"/api/pro/tickets/{TICKET}/files/input":
                    rows = "".join(f"{i},{p.name}\r\n" for i, p in enumerate(inputs))
                    self._send(200, rows.encode())
                elif found:
                    index = int(found.group(1))
                    if index == len(inputs) - 1:
                        stopping.set()
                    self._send(200, inputs[index].read_bytes())
                else:
                    self._send(404, b"not found")

            def _send(self, status, data, cookie=None):
                self.reply(status, data, session_cookie(cookie))

        self.server, self.url = serve_in_thread(Handler)

    def posts_to(self, suffix: str) -> list[dict]:
        return [form for method, path, form in self.requests
                if method == "POST" and path == f"/api/pro/tickets/{TICKET}/{suffix}"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("input")
    image = sitk.GetImageFromArray(np.zeros((4, 8, 8), dtype=np.int16))
    sitk.WriteImage(image, str(folder / "ct.nii.gz"))
    return Workspace.for_image(folder / "ct.nii.gz").export(folder / "export", "ws.itksnap")


def run_job(tmp_path, inputs, release_answer):
    stopping = threading.Event()
    server = ProviderServer(inputs, stopping, release_answer)
    settings = job_settings(tmp_path / "work", server_url=server.url, provider_code="node-3",
                            retry_budget=2.0)
    spec = ServiceSpec("LungSegmentation", "/lung_segmentation/inference",
                       "http://127.0.0.1:9", "lungs", "", "lab")
    session = ProviderSession(server.url, settings.provider_token, settings.retry_budget)
    job = lung_job(settings, spec, session, TICKET, stopping)
    try:
        outcome = job.run()
    finally:
        session.close()
        server.server.shutdown()
    return outcome, server, job.workdir


def test_shutdown_after_a_stage_releases_the_ticket(tmp_path, inputs):
    outcome, server, workdir = run_job(tmp_path, inputs, (200, "ready"))
    assert outcome == "dropped"
    [received] = server.posts_to("info")
    assert received["message"].startswith("Files received"), "the download stage finished"
    assert server.posts_to("release") == [{"message": "instance node-3 is shutting down"}]
    assert server.posts_to("warning") == [], "no lease warning when the release worked"
    assert not any("/inference" in path for _, path, _ in server.requests)
    assert not workdir.exists() and list((tmp_path / "work").iterdir()) == []


@pytest.mark.parametrize("answer", [(404, "Not Found"), (405, "Method Not Allowed"),
                                    (400, "Unknown log category 'release': use info, warning "
                                          "or error")])
def test_older_server_gets_the_lease_warning(tmp_path, inputs, answer):
    outcome, server, workdir = run_job(tmp_path, inputs, answer)
    assert outcome == "dropped"
    [warning] = server.posts_to("warning")
    assert "stopped before finishing" in warning["message"]
    assert "claim lease" in warning["message"]
    assert not workdir.exists()


def test_a_ticket_no_longer_ours_is_left_alone(tmp_path, inputs):
    outcome, server, workdir = run_job(tmp_path, inputs,
                                       (409, "Ticket 7: Cannot release a ticket whose status is "
                                             "deleted"))
    assert outcome == "dropped"
    assert len(server.posts_to("release")) == 1
    assert server.posts_to("warning") == [] and server.posts_to("failed") == []
    assert not workdir.exists()
