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


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The failure contract: exit code != 0, one line on stderr starting `dss:`, no traceback."""
    assert result.returncode != 0, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dss: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]
