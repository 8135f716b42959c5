"""What the `dss` command line shows: aligned tables, JSON for scripts, a progress bar, waiting."""
from __future__ import annotations

import json
import sys
import time
from typing import Any, Sequence, TextIO

from .api import DSSClient
from .errors import DSSTransientError

TERMINAL_STATES = ("success", "failed", "timeout", "deleted")
BAR_WIDTH = 30
# How long polls may fail in a row before waiting gives up: a web server restart that runs
# migrations takes tens of seconds, and `itksnap-wt -dss-tickets-wait` rides out about 50 s.
MAX_POLL_DOWNTIME_SECONDS = 60.0


class CLIError(Exception):
    """A problem the user can fix; the command line prints it as one line."""


def _plain(value: Any) -> Any:
    return value._asdict() if hasattr(value, "_asdict") else value


def print_rows(rows: Sequence[Any], columns: Sequence[str], as_json: bool,
               out: TextIO | None = None) -> None:
    """NamedTuple rows as aligned columns under a header, or as a JSON list of objects."""
    out = out or sys.stdout  # looked up per call: tests and callers may swap sys.stdout
    if as_json:
        json.dump([_plain(row) for row in rows], out, indent=2)
        out.write("\n")
        return
    cells = [[str(value) for value in row] for row in rows]
    widths = [max([len(column)] + [len(line[i]) for line in cells])
              for i, column in enumerate(columns)]
    for line in [list(columns)] + cells:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() + "\n")


def print_value(value: Any, as_json: bool, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if as_json:
        json.dump(_plain(value), out, indent=2)
        out.write("\n")
    else:
        out.write(f"{value}\n")


class ProgressBar:
    """One redrawn line on a terminal; on a pipe, a line whenever status or tenth changes."""

    def __init__(self, label: str, stream: TextIO | None = None):
        self.label, self.stream = label, stream or sys.stderr
        self.interactive = self.stream.isatty()
        self._last: tuple[str, int] | None = None

    def update(self, progress: float, status: str) -> None:
        progress = min(max(progress, 0.0), 1.0)
        filled = int(round(progress * BAR_WIDTH))
        line = f"{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {progress:4.0%} {status}"
        if self.interactive:
            self.stream.write("\r" + line.ljust(BAR_WIDTH + len(self.label) + 20))
        elif self._last != (status, int(progress * 10)):
            self.stream.write(line + "\n")
        self._last = (status, int(progress * 10))
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line above the bar (log messages as they arrive)."""
        prefix = "\r" + " " * (BAR_WIDTH + len(self.label) + 20) + "\r" if self.interactive else ""
        self.stream.write(f"{prefix}{text}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def _poll(client: DSSClient, ticket_id: int, since: int, bar: ProgressBar,
          poll_seconds: float, max_downtime: float) -> dict:
    """One `/detail` answer, retried while the server fails transiently for up to
    `max_downtime` seconds in a row; the bar says when it went away and when it came back."""
    down_since = None
    while True:
        try:
            detail = client.detail(ticket_id, since=since)
        except DSSTransientError as exc:
            now = time.monotonic()
            if down_since is None:
                down_since = now
                reason = f"HTTP {exc.status}" if exc.status else str(exc)  # not a 502 page
                bar.message(f"  server unavailable ({reason}); retrying for up to "
                            f"{max_downtime:g} s")
            elif now - down_since >= max_downtime:
                raise
            time.sleep(poll_seconds * 2)
            continue
        if down_since is not None:
            bar.message("  server available again")
        return detail


def wait_for_ticket(client: DSSClient, ticket_id: int, bar: ProgressBar,
                    poll_seconds: float = 1.0, timeout: float | None = None,
                    echo_log: bool = True,
                    max_downtime: float = MAX_POLL_DOWNTIME_SECONDS) -> tuple[str, list[dict]]:
    """Poll `/detail` until the ticket reaches a terminal state; returns it and the whole log.

    echo_log: show log messages above the bar as they arrive.
    max_downtime: seconds of failed polls in a row tolerated (the server may restart).

    Log entries are fetched incrementally with `since`.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    log: list[dict] = []
    while True:
        detail = _poll(client, ticket_id, log[-1]["id"] if log else 0, bar, poll_seconds,
                       max_downtime)
        for entry in detail.get("log", []):
            log.append(entry)
            if echo_log:
                bar.message(f"  [{entry['category']}] {entry['message']}")
        status = detail["status"]
        bar.update(float(detail.get("progress", 0.0)), status)
        if status in TERMINAL_STATES:
            bar.close()
            return status, log
        if deadline is not None and time.monotonic() > deadline:
            bar.close()
            raise TimeoutError(f"ticket {ticket_id} still {status} after {timeout:g} s")
        time.sleep(poll_seconds)
