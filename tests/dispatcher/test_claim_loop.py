"""The claim loop against a real loopback server that has no long poll: it logs in with the
token, finds the service's githash by name, and never spins on empty claims; a refused
session makes it log in again."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from dispatcher_fakes import QuietHandler, job_settings, lung_services, serve_in_thread, session_cookie
from dss_client.sdk.daemon import Worker
from dss_dispatcher.config import ServiceSpec
from dss_dispatcher.worker import inference_service

GITHASH = "5d482fcb" + "0" * 32


class OldServer:
    """Answers a claim with `None` at once (a server without `wait=`); refuses the first
    session after two claims, as a restarted server would."""

    def __init__(self):
        self.claims, self.logins = 0, 0
        outer = self

        class Handler(QuietHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/api/login":
                    outer.logins += 1
                    self._send(200, "logged in as robot@lab", cookie=f"s{outer.logins:039d}")
                elif self.path == "/api/pro/services/claims":
                    outer.claims += 1
                    if outer.claims == 3 and outer.logins == 1:
                        self._send(401, "You are not logged in!")
                    else:
                        self._send(200, "None")
                else:
                    self._send(404, "not found")

            def do_GET(self):
                if self.path == "/api/pro/services":
                    self._send(200, f"LungSegmentation,1.0.0,{GITHASH},lab\r\n"
                                    f"LungSegmentation,1.0.0,{'f' * 40},other-lab\r\n")
                else:
                    self._send(404, "not found")

            def _send(self, status, body, cookie=None):
                self.reply(status, body.encode(), session_cookie(cookie))

        self.server, self.url = serve_in_thread(Handler)


def test_empty_claims_do_not_spin_and_refused_sessions_log_in_again(tmp_path):
    server = OldServer()
    settings = job_settings(Path(tmp_path), server_url=server.url, provider_code="test",
                            claim_wait=20.0, retry_budget=5.0)
    spec = ServiceSpec("LungSegmentation", "/lung_segmentation/inference", "http://x", "lungs",
                       "CT", "lab")
    stopping = threading.Event()
    worker = Worker(settings, inference_service(spec, 60.0), 0, stopping)
    worker.thread.start()
    time.sleep(2.2)
    stopping.set()
    worker.thread.join(5)
    server.server.shutdown()
    assert not worker.thread.is_alive()
    assert 3 <= server.claims <= 6          # about one per poll interval, not hundreds
    assert server.logins == 2               # the refused session was replaced


class GarbageServer(OldServer):
    """Lists the provider's services in a shape no client can parse: the worker crashes."""

    def __init__(self):
        super().__init__()
        outer = self
        handler = self.server.RequestHandlerClass

        def do_GET(self):
            outer.listings = getattr(outer, "listings", 0) + 1
            self._send(200, "not,a,table\r\n")
        handler.do_GET = do_GET


def test_supervisor_restarts_a_crashed_worker(tmp_path):
    from prometheus_client import REGISTRY

    from dss_client.sdk.daemon import Supervisor

    server = GarbageServer()
    spec = ServiceSpec("Crashy", "/x/inference", "http://x", "lungs", "", "lab")
    settings = job_settings(Path(tmp_path), server_url=server.url, provider_code="test",
                            services=(spec,))
    supervisor = Supervisor(settings, lung_services(settings))
    runner = threading.Thread(target=supervisor.run)
    runner.start()
    time.sleep(4.0)
    health = supervisor.health()
    supervisor.stop()
    runner.join(10)
    server.server.shutdown()
    assert REGISTRY.get_sample_value("dss_dispatcher_daemon_restarts_total",
                                     {"service": "Crashy"}) >= 1
    assert server.listings >= 2                     # the restarted worker tried again
    assert set(health) == {"ok", "workers"}


class RefusingServer(OldServer):
    """Refuses every login: a revoked or mistyped provider token."""

    def __init__(self):
        super().__init__()
        outer = self
        handler = self.server.RequestHandlerClass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            outer.logins += 1
            self._send(401, "Invalid token")
        handler.do_POST = do_POST


def test_a_refused_token_makes_the_dispatcher_unhealthy_while_it_keeps_trying(tmp_path,
                                                                              monkeypatch):
    from dss_client.sdk import daemon
    from dss_client.sdk.daemon import Supervisor

    monkeypatch.setattr(daemon, "backoff_delay", lambda *args, **kwargs: 0.05)
    server = RefusingServer()
    spec = ServiceSpec("LungSegmentation", "/x/inference", "http://x", "lungs", "", "lab")
    settings = job_settings(Path(tmp_path), server_url=server.url, provider_code="test",
                            services=(spec,))
    supervisor = Supervisor(settings, lung_services(settings))
    runner = threading.Thread(target=supervisor.run)
    runner.start()
    try:
        deadline = time.monotonic() + 5
        while server.logins < 5 and time.monotonic() < deadline:   # a few refusals in a row
            time.sleep(0.05)
        health = supervisor.health()
    finally:
        supervisor.stop()
        runner.join(10)
        server.server.shutdown()
    assert health["ok"] is False and health["workers"][0]["refused"] is True
    assert health["workers"][0]["alive"], "still trying"
