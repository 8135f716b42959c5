"""Start-up chores: the embedded mode's local admin; the periodic lease and upload sweeps.

Each chore is a unit of work of its own (`sessions.begin()`: committed at its end, rolled back
on an error); the services it calls only flush."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from ..throttle import Throttle
from . import auth, leases
from .files import remove_unlocked, upload_dir

# An upload's temp file is locked while written (files.UploadFile); one being made is not
# locked for an instant yet, so an unlocked one under its hidden name goes only once old.
STALE_UPLOAD_SECONDS = 3600
UPLOAD_SWEEP_SECONDS = 600

log = logging.getLogger(__name__)


def ensure_local_admin(sessions) -> None:
    with sessions.begin() as db:
        auth.ensure_user(db, auth.EMBEDDED_ADMIN_EMAIL, "Local admin", sysadmin=True,
                         tier="poweruser")


def local_admin_token(sessions) -> str:
    """A fresh login token for the embedded admin, printed at start."""
    with sessions.begin() as db:
        user = auth.ensure_user(db, auth.EMBEDDED_ADMIN_EMAIL, "Local admin", sysadmin=True,
                                tier="poweruser")
        return auth.issue_token(db, user)


def start_lease_sweeper(sessions, config) -> threading.Thread:
    """Expire overdue claims every half lease (1 to 30 s); every 10 minutes, also remove the
    temporary files of uploads that a killed process left behind."""
    interval = min(max(config.claim_lease / 2, 1.0), 30.0)
    policy = leases.ClaimPolicy(config.claim_lease, config.max_attempts, config.datastore)
    uploads = Throttle(UPLOAD_SWEEP_SECONDS)
    uploads.due(["datastore"])  # remove_stale_uploads ran at start
    stop = threading.Event()

    def sweep_forever():
        while not stop.wait(interval):
            try:
                with sessions.begin() as db:
                    leases.sweep(db, policy)
            except SQLAlchemyError as exc:  # the database may be down for a while
                log.warning("lease sweep failed: %s", exc)
            if uploads.due(["datastore"]):
                try:
                    remove_stale_uploads(config.datastore)
                except OSError as exc:  # an unmounted datastore must not end the sweeps
                    log.warning("upload sweep failed: %s", exc)

    thread = threading.Thread(target=sweep_forever, daemon=True, name="dss-lease-sweeper")
    thread.start()
    return thread


def remove_stale_uploads(datastore: Path, max_age_seconds: float = STALE_UPLOAD_SECONDS) -> int:
    """Uploads a killed process left half-written in <datastore>/tmp (they never became files):
    every `upload-*` no live process holds locked, and the empty `.upload-*` of one killed in
    the instant between making and locking its file, once it is old."""
    cutoff = time.time() - max_age_seconds
    removed = 0
    for leftover in upload_dir(datastore).glob("*upload-*"):
        try:
            if leftover.name.startswith("upload-"):
                removed += remove_unlocked(leftover)
            elif leftover.stat().st_mtime < cutoff:
                leftover.unlink()
                removed += 1
        except FileNotFoundError:  # another worker got there first
            pass
    return removed
