"""Retrying transient failures with exponential backoff and full jitter, honouring Retry-After."""
from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

from dss_client.errors import TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")
BASE_DELAY, MAX_DELAY = 0.5, 30.0


def backoff_delay(attempt: int, retry_after: float | None = None,
                  base: float = BASE_DELAY, cap: float = MAX_DELAY) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): full jitter over an
    exponentially growing window; a server's Retry-After is a floor."""
    window = min(cap, base * 2 ** (attempt - 1))
    delay = random.uniform(window / 2, window)
    return max(delay, min(retry_after, cap)) if retry_after is not None else delay


def retry(call: Callable[[], T], budget: float, what: str,
          sleep: Callable[[float], object] = time.sleep, on_retry: Callable[[], object] | None = None,
          clock: Callable[[], float] = time.monotonic) -> T:
    """`call()` until it succeeds, retrying a TransientError (the client's DSSTransientError
    is one) while the next attempt would still start within `budget` seconds; then the last
    error is raised."""
    deadline = clock() + budget
    attempt = 0
    while True:
        try:
            return call()
        except TransientError as exc:
            attempt += 1
            delay = backoff_delay(attempt, exc.retry_after)
            if clock() + delay > deadline:
                raise
            log.warning("%s failed (%s); retry %d in %.1f s", what, exc, attempt, delay)
            if on_retry:
                on_retry()
            sleep(delay)
