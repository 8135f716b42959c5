"""Scratch folders of a killed dispatcher are removed at the next start, a live one's are not."""
from __future__ import annotations


def test_scratch_folders_of_dead_processes_are_removed(tmp_path):
    import os
    import subprocess

    from dss_dispatcher.workdirs import remove_stale_workdirs
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = tmp_path / f"ticket_00000007_{finished.pid}_0123abcd"
    alive = tmp_path / f"ticket_00000008_{os.getpid()}_0123abcd"
    other = tmp_path / "ticket_notes"
    for path in (dead, alive, other):
        path.mkdir()
    assert remove_stale_workdirs(tmp_path) == 1
    assert not dead.exists() and alive.exists() and other.exists()
