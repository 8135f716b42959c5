"""gunicorn's gthread worker, with a read timeout on every connection (DSS_BODY_TIMEOUT).

gthread gives a connection a thread as soon as its first bytes arrive; a client that then sends
half a request (headers or body) and stalls would hold that thread for as long as it keeps the
socket open, and 16 of them would hang the process. With the timeout, a request whose headers
stall is closed, and one whose body stalls is answered 408 (api/_http.py), freeing the thread.
"""
from __future__ import annotations

from gunicorn.workers import gthread

from .config import body_timeout
from .services import notify


class ThreadWorker(gthread.ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read_timeout = body_timeout()

    def handle_exit(self, sig, frame) -> None:
        """SIGTERM: gunicorn waits for the requests in progress; waiting claims end at once."""
        notify.stop_waiting()
        super().handle_exit(sig, frame)

    def enqueue_req(self, conn):
        if "init" not in vars(conn):  # gthread makes each socket blocking in conn.init()
            setup = conn.init
            conn.init = lambda: self._init_with_timeout(conn, setup)
        super().enqueue_req(conn)

    def _init_with_timeout(self, conn, setup) -> None:
        setup()
        conn.sock.settimeout(self.read_timeout)
        if not conn.is_http2 and not isinstance(conn.parser, _StalledRequestEnds):
            conn.parser = _StalledRequestEnds(conn.parser)
            close = conn.close
            # gunicorn closes gracefully on its main thread, lingering up to 2 s for the peer
            # to close too: a stalled client never does, so 16 of them would stop the worker
            # accepting anything for half a minute. A connection whose reads timed out is
            # closed at once (what it sent is read, so its answer is not lost to a reset).
            conn.close = lambda graceful=False: close(graceful and not conn.parser.stalled)


class _StalledRequestEnds:
    """gunicorn's HTTP/1 parser, ending a connection whose request line or headers stop
    arriving quietly (gunicorn would log a traceback for the timeout); `stalled` tells that a
    read of the headers or the body timed out."""

    def __init__(self, parser):
        self._parser = parser
        self.stalled = False
        read = parser.unreader.chunk

        def chunk(*args, **kwargs):
            try:
                return read(*args, **kwargs)
            except TimeoutError:
                self.stalled = True
                raise
        parser.unreader.chunk = chunk

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._parser)
        except TimeoutError:
            raise StopIteration("request headers stalled") from None

    def __getattr__(self, name):  # unreader, finish_body, ...
        return getattr(self._parser, name)
