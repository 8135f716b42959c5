"""Commit messages (docs/development.md): a subject of at most 72 characters, so that
`git log --oneline`, shortlogs and review tools show it whole. Checked for the commits made
since the rule was adopted; older history is left as it is."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULE_ADOPTED = "875806d"  # the last commit before the rule
MAX_SUBJECT = 72


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


def test_commit_subjects_fit_72_columns():
    if shutil.which("git") is None or _git("cat-file", "-e", f"{RULE_ADOPTED}^{{commit}}").returncode:
        pytest.skip("not a git checkout with the history since the rule (a shallow clone?)")
    subjects = _git("log", "--format=%h %s", f"{RULE_ADOPTED}..HEAD").stdout.splitlines()
    long = [line for line in subjects if len(line.split(" ", 1)[1]) > MAX_SUBJECT]
    assert not long, f"commit subjects over {MAX_SUBJECT} characters: {long}"
