"""A tiny real HTTP server on loopback that answers what a test scripts (errors, captures)."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, NamedTuple


class Captured(NamedTuple):
    method: str
    path: str
    headers: dict
    body: bytes


class Answer(NamedTuple):
    status: int
    body: bytes = b""
    headers: dict = {}
    delay: float = 0.0


class LoopbackServer:
    """Serves `respond(captured) -> Answer` on 127.0.0.1; every request is kept in `requests`."""

    def __init__(self, respond: Callable[[Captured], Answer]):
        self.requests: list[Captured] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                captured = Captured(self.command, self.path, dict(self.headers),
                                    self.rfile.read(length))
                owner.requests.append(captured)
                answer = respond(captured)
                if answer.delay:
                    threading.Event().wait(answer.delay)
                self.send_response(answer.status)
                for name, value in {"Content-Length": str(len(answer.body)), **answer.headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> "LoopbackServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
