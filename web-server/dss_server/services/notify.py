"""Wake-ups for claims that wait (`wait=` seconds): a ticket became ready.

In this process the after-commit hook wakes waiters; across processes PostgreSQL NOTIFY does
(one LISTEN connection per process and database). Waiters also re-check every POLL_SECONDS, so a
lost notification only costs latency.
"""
from __future__ import annotations

import logging
import select as selectors
import threading

import psycopg2
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session as DB

CHANNEL = "dss_ticket_ready"
POLL_SECONDS = 1.0
log = logging.getLogger(__name__)

_NOTIFY = text("SELECT pg_notify(:channel, '')")
_condition = threading.Condition()
_generation = 0
_listeners: dict[str, threading.Thread] = {}
_listeners_lock = threading.Lock()
_stopping = False  # set by a signal handler, so without a lock: waiters look every POLL_SECONDS


def ticket_ready(db: DB) -> None:
    """Called inside the transaction that made a ticket ready; fires when it commits."""
    db.info["ticket_ready"] = True
    if db.get_bind().dialect.name == "postgresql":
        with db.no_autoflush:  # the ticket's pending changes go with the request's next flush
            db.execute(_NOTIFY, {"channel": CHANNEL})


def wake() -> None:
    global _generation
    with _condition:
        _generation += 1
        _condition.notify_all()


def generation() -> int:
    with _condition:
        return _generation


def wait(since_generation: int, timeout: float) -> None:
    """Block until a wake-up newer than `since_generation`, at most `timeout` s."""
    with _condition:
        _condition.wait_for(lambda: _generation != since_generation, min(timeout, POLL_SECONDS))


def stop_waiting() -> None:
    """The process is shutting down: claims waiting now answer None within POLL_SECONDS rather
    than hold a graceful shutdown (and a rolling deploy) for up to their `wait=`."""
    global _stopping
    _stopping = True


def stopping() -> bool:
    return _stopping


def install(session_factory, engine: Engine) -> None:
    """Hook commits of this app's sessions; start the LISTEN thread for PostgreSQL."""
    event.listen(session_factory, "after_commit", _after_commit)
    event.listen(session_factory, "after_rollback", lambda db: db.info.pop("ticket_ready", None))
    if engine.dialect.name == "postgresql":
        _start_listener(engine)


def _after_commit(db: DB) -> None:
    if db.info.pop("ticket_ready", False):
        wake()


def _start_listener(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    with _listeners_lock:
        thread = _listeners.get(url)
        if thread is not None and thread.is_alive():
            return
        thread = threading.Thread(target=_listen_forever, args=(url,), daemon=True,
                                  name="dss-ready-listener")
        _listeners[url] = thread
        thread.start()


def _listen_forever(url: str) -> None:
    params = make_url(url).translate_connect_args(username="user", database="dbname")
    stop = threading.Event()
    while not stop.is_set():
        try:
            connection = psycopg2.connect(**params)
            connection.autocommit = True
            connection.cursor().execute(f"LISTEN {CHANNEL}")
            while True:
                if selectors.select([connection], [], [], 30)[0]:
                    connection.poll()
                    if connection.notifies:
                        connection.notifies.clear()
                        wake()
        except psycopg2.Error as exc:  # database restarted: polling covers the gap
            if "does not exist" in str(exc):  # database dropped: nothing left to listen to
                return
            log.warning("ready-ticket listener lost its connection (%s); retrying", exc)
            stop.wait(5)
