"""Errors raised by the DSS client."""
from __future__ import annotations


class DSSError(Exception):
    """The server answered something other than 200 (or a body the protocol does not allow).

    `status` is the HTTP status (None when no answer came), `body` the response text.
    """

    def __init__(self, status: int | None, body: str, url: str = ""):
        self.status, self.body, self.url = status, body, url
        if status is None:  # no answer: the body says why
            super().__init__(body)
            return
        where = f" ({url})" if url else ""
        super().__init__(f"HTTP {status}: {body.strip() or '(empty body)'}{where}")


class DSSLocalError(DSSError):
    """Not the server's doing: this machine could not store what the server sent (disk full,
    folder read-only). `errno` is the operating system's error number."""

    def __init__(self, body: str, url: str = "", errno: int | None = None):
        super().__init__(None, body, url)
        self.errno = errno


class DSSTransientError(DSSError):
    """Worth retrying: connection refused or reset, timeout, 5xx, 503 (`retry_after` seconds)."""

    def __init__(self, status: int | None, body: str, url: str = "",
                 retry_after: float | None = None):
        super().__init__(status, body, url)
        self.retry_after = retry_after
