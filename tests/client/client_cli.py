"""Run the `dss` console script as a real subprocess with its own config file."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DSS = Path(sys.executable).with_name("dss")


def run_dss(config: Path, *args: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    command = [str(DSS)] if DSS.exists() else [sys.executable, "-m", "dss_client.cli"]
    return subprocess.run(command + list(args), input=stdin, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "DSS_CONFIG": str(config)})


def one_line_error(result: subprocess.CompletedProcess, after_progress: bool = False) -> str:
    """The failure contract: exit code != 0, one line on stderr starting `dss:`, no traceback.

    after_progress: the command showed progress on stderr first; the error is its last line.
    """
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("dss: ")]
    assert errors == ([lines[-1]] if after_progress else lines) and len(errors) == 1, result.stderr
    return errors[0]
