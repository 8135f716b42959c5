"""`wait_for_ticket` (dss wait, dss submit --wait) riding out a server restart, on loopback."""
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from client_cli import DSS
from client_loopback import Answer, LoopbackServer
from dss_client import DSSClient, DSSTransientError
from dss_client.terminal import ProgressBar, wait_for_ticket
from helpers import default_sigint

SUCCESS = json.dumps({"result": {"status": "success", "progress": 1.0, "log": []}}).encode()


def _down_for(seconds: float):
    """A server answering 503 (as a proxy does while the web server restarts) for `seconds`
    after its first request, then that the ticket succeeded."""
    started = []

    def respond(request):
        started.append(time.monotonic())
        return Answer(200, SUCCESS) if time.monotonic() - started[0] > seconds else Answer(503)
    return respond


def test_wait_rides_out_downtime_shorter_than_its_tolerance():
    output = io.StringIO()
    with LoopbackServer(_down_for(1.0)) as server:
        status, _ = wait_for_ticket(DSSClient(server.url), 5, ProgressBar("ticket 5", output),
                                    poll_seconds=0.05, max_downtime=5.0)
    assert status == "success" and len(server.requests) > 5  # many failed polls in a row
    lines = output.getvalue().splitlines()
    assert lines[0] == "  server unavailable (HTTP 503); retrying for up to 5 s"
    assert lines[1] == "  server available again" and lines[2].endswith("100% success")


def test_wait_gives_up_after_its_tolerance():
    output = io.StringIO()
    with LoopbackServer(_down_for(60.0)) as server:
        started = time.monotonic()
        with pytest.raises(DSSTransientError) as caught:
            wait_for_ticket(DSSClient(server.url), 5, ProgressBar("ticket 5", output),
                            poll_seconds=0.05, max_downtime=0.5)
    assert 0.5 <= time.monotonic() - started < 5 and caught.value.status == 503
    assert output.getvalue().count("server unavailable") == 1


def test_ctrl_c_while_waiting_says_the_ticket_keeps_running(tmp_path):
    claimed = json.dumps({"result": {"status": "claimed", "progress": 0.3, "log": []}}).encode()
    with LoopbackServer(lambda request: Answer(200, claimed)) as server:
        command = [str(DSS)] if DSS.exists() else [sys.executable, "-m", "dss_client.cli"]
        waiting = subprocess.Popen(command + ["--server", server.url, "wait", "12"],
                                   stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                   env={**os.environ, "DSS_CONFIG": str(tmp_path / "c.json")},
                                   preexec_fn=default_sigint)
        try:
            assert "claimed" in waiting.stderr.readline()  # the bar's first line: it is polling
            waiting.send_signal(signal.SIGINT)
            _, stderr = waiting.communicate(timeout=30)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait()
    assert waiting.returncode == 130 and "Traceback" not in stderr
    assert stderr.strip().splitlines() == [
        "dss: interrupted; ticket 12 keeps running on the server: follow it with dss wait 12, "
        "or cancel it with dss delete 12"]
