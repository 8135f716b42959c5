"""What the `dss` command line shows: aligned tables, JSON for scripts, a progress bar, waiting."""
from __future__ import annotations

import json
import sys
import time
from collections import Counter
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
                    **options) -> tuple[str, list[dict]]:
    """`wait_for_tickets` for one ticket: its final status and whole log."""
    return wait_for_tickets(client, [ticket_id], bar, **options)[ticket_id]


def wait_for_tickets(client: DSSClient, ticket_ids: Sequence[int], bar: ProgressBar,
                     poll_seconds: float = 1.0, timeout: float | None = None,
                     echo_log: bool = True, max_downtime: float = MAX_POLL_DOWNTIME_SECONDS
                     ) -> dict[int, tuple[str, list[dict]]]:
    """Poll `/detail` of each running ticket until all reach a terminal state, with one bar
    (mean progress; the status, or how many tickets are in each); returns each final status
    and whole log.

    echo_log: show log messages above the bar as they arrive (with the ticket id when several).
    max_downtime: seconds of failed polls in a row tolerated (the server may restart).

    Log entries are fetched incrementally with `since`.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    logs: dict[int, list[dict]] = {ticket_id: [] for ticket_id in ticket_ids}
    states: dict[int, str] = {}
    progress: dict[int, float] = {}
    tag = (lambda ticket_id: "") if len(ticket_ids) == 1 else (lambda ticket_id: f" #{ticket_id}")
    while True:
        for ticket_id in ticket_ids:
            if states.get(ticket_id) in TERMINAL_STATES:
                continue
            log = logs[ticket_id]
            detail = _poll(client, ticket_id, log[-1]["id"] if log else 0, bar, poll_seconds,
                           max_downtime)
            for entry in detail.get("log", []):
                log.append(entry)
                if echo_log:
                    bar.message(f" {tag(ticket_id)} [{entry['category']}] {entry['message']}")
            states[ticket_id] = detail["status"]
            progress[ticket_id] = float(detail.get("progress", 0.0))
        bar.update(sum(progress.values()) / len(ticket_ids), _status_summary(states))
        running = [ticket_id for ticket_id in ticket_ids if states[ticket_id] not in TERMINAL_STATES]
        if not running:
            bar.close()
            return {ticket_id: (states[ticket_id], logs[ticket_id]) for ticket_id in ticket_ids}
        if deadline is not None and time.monotonic() > deadline:
            bar.close()
            what = (f"ticket {running[0]} still {states[running[0]]}" if len(ticket_ids) == 1
                    else f"tickets {', '.join(map(str, running))} still running")
            raise TimeoutError(f"{what} after {timeout:g} s")
        time.sleep(poll_seconds)


def _status_summary(states: dict[int, str]) -> str:
    """One ticket's status, or how many tickets are in each status (`2 success, 1 claimed`)."""
    if len(states) == 1:
        return next(iter(states.values()))
    return ", ".join(f"{count} {status}" for status, count in Counter(states.values()).items())
