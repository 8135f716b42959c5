"""Per-process rate limit for housekeeping that need not run on every request."""
from __future__ import annotations

import threading
import time


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
