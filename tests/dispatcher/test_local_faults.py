"""The dispatcher's own scratch folder failing (disk full, read-only) is not the ticket's
fault: the ticket goes back to the queue, the worker pauses and /healthz says so until the
folder takes files again, and a dispatcher whose folder is unusable does not start."""
from __future__ import annotations

import errno
import subprocess
import threading

from dispatcher_fakes import SPEC, FakeProviderSession, job_settings, lung_job, lung_services
from dss_client import DSSLocalError
from dss_client.sdk import daemon
from dss_client.sdk.daemon import Supervisor
from helpers import PYTHON


def test_a_full_scratch_disk_releases_the_ticket_instead_of_failing_it(tmp_path):
    full = DSSLocalError("cannot save ct.nii.gz in /scratch (No space left on device)",
                         "/api/pro/tickets/5/files/input/0", errno.ENOSPC)
    session = FakeProviderSession([], download=full)
    job = lung_job(job_settings(tmp_path / "work"), SPEC, session, 5, threading.Event())
    assert job.run() == "released"
    assert session.named("release") == [(5, "instance node cannot store files on its scratch "
                                            "disk (full or read-only)")]
    assert session.named("set_status") == [] and session.named("log_message") == []
    assert "No space left on device" in job.local_fault


def test_an_unwritable_folder_found_after_a_failure_is_a_local_fault(tmp_path):
    """Whatever the failure looked like, a scratch folder that cannot take a file is to blame."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    session = FakeProviderSession([], download=RuntimeError("ITK ERROR: could not write"))
    job = lung_job(job_settings(blocker / "work"), SPEC, session, 5, threading.Event())
    assert job.run() == "released"
    assert session.named("set_status") == []


def test_the_worker_pauses_unhealthy_until_the_folder_works(tmp_path, monkeypatch):
    monkeypatch.setattr(daemon, "backoff_delay", lambda *args, **kwargs: 0.01)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings = job_settings(blocker / "work", services=(SPEC,))
    supervisor = Supervisor(settings, lung_services(settings))
    [worker] = supervisor.workers
    worker.local_fault, worker.local_faults = "cannot write (No space left on device)", 1
    assert supervisor.health()["ok"] is False
    assert supervisor.health()["workers"][0]["fault"].endswith("(No space left on device)")
    assert worker._scratch_folder_usable() is False, "still unwritable: no claim"
    assert supervisor.health()["ok"] is False
    blocker.unlink()
    assert worker._scratch_folder_usable() is True
    assert supervisor.health()["workers"][0]["fault"] is None


def test_an_unusable_work_dir_stops_the_start_with_a_named_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    result = subprocess.run([PYTHON, "-m", "dss_dispatcher"], capture_output=True, text=True,
                            timeout=60, env={"DSS_PROVIDER_TOKEN": "t" * 48, "DSS_METRICS_PORT": "0",
                                             "DSS_WORK_DIR": str(blocker / "work")})
    assert result.returncode == 2
    assert result.stderr.startswith(f"dss-dispatcher: DSS_WORK_DIR: cannot write in {blocker}")
    assert "Traceback" not in result.stderr
