"""The errors of the DSS client, the provider SDK and the dispatcher: one tree, so that a
retry loop catches every transient failure, whichever server it came from, as TransientError."""
from __future__ import annotations

import email.utils
import time


class TransientError(Exception):
    """Worth retrying (a DSS server or an inference server unavailable); `retry_after`, the
    seconds the server asked for, is a floor for the wait."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


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


class DSSTransientError(DSSError, TransientError):
    """Worth retrying: connection refused or reset, timeout, 5xx, 503 (`retry_after` seconds)."""

    def __init__(self, status: int | None, body: str, url: str = "",
                 retry_after: float | None = None):
        super().__init__(status, body, url)
        self.retry_after = retry_after


def parse_retry_after(header: str | None) -> float | None:
    """Seconds from a `Retry-After` header: a number of seconds or an HTTP date."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(header).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
