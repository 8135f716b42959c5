"""Scratch folders of a killed dispatcher are removed at the next start, those of a running
ticket (locked while it runs) are not, even when the killed and the new dispatcher have the
same pid (pid 1 in a container)."""
from __future__ import annotations

import os
import subprocess
import sys

from dss_client.sdk.workdirs import create_locked, new_workdir, remove_stale_workdirs


def test_unlocked_scratch_folders_are_removed_locked_ones_kept(tmp_path):
    running = new_workdir(tmp_path, 8)
    lock = create_locked(running)
    # what a killed pid-1 dispatcher leaves: a folder named after our own (live) pid
    killed_same_pid = tmp_path / f"ticket_00000007_{os.getpid()}_0123abcd"
    half_created = tmp_path / f".ticket_00000009_{os.getpid()}_0123abcd"
    other = tmp_path / "ticket_notes"
    for path in (killed_same_pid, half_created, other):
        path.mkdir()
    try:
        assert remove_stale_workdirs(tmp_path) == 2
        assert running.is_dir() and other.is_dir()
        assert not killed_same_pid.exists() and not half_created.exists()
    finally:
        os.close(lock)


def test_a_killed_process_leaves_its_folder_unlocked(tmp_path):
    script = ("import sys, os; from pathlib import Path; "
              "from dss_client.sdk.workdirs import create_locked, new_workdir; "
              "create_locked(new_workdir(Path(sys.argv[1]), 3)); os._exit(0)")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=60)
    [left] = tmp_path.iterdir()
    assert remove_stale_workdirs(tmp_path) == 1 and not left.exists()
