"""Per-process limits: a rate for housekeeping that need not run on every request, and a count
of requests that may hold a thread waiting."""
from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import contextmanager
from typing import Iterator


class Throttle:
    def __init__(self, interval_seconds: float):
        self.interval = interval_seconds
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, keys: list[str]) -> list[str]:
        """The keys whose last run is older than the interval; they count as run now."""
        now = time.monotonic()
        with self._lock:
            due = [key for key in keys if now - self._last.get(key, -1e9) >= self.interval]
            for key in due:
                self._last[key] = now
        return due


class Slots:
    """At most `total` holders at once in this process, and `per_key` of them per key."""

    def __init__(self):
        self._held: Counter = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, key, total: int, per_key: int) -> Iterator[bool]:
        """Yields whether a slot was free (and is held until the block ends)."""
        with self._lock:
            taken = self._held.total() < total and self._held[key] < per_key
            if taken:
                self._held[key] += 1
        try:
            yield taken
        finally:
            if taken:
                with self._lock:
                    self._held[key] -= 1
                    if not self._held[key]:
                        del self._held[key]
