"""Retries with backoff against a real loopback HTTP server that fails before it answers."""
from __future__ import annotations

import email.utils
import json
import time

import pytest

from dispatcher_fakes import QuietHandler, serve_in_thread
from dss_client import DSSClient, DSSError, DSSTransientError, TransientError, sdk
from dss_client.sdk.retry import backoff_delay, retry
from dss_client.sdk.session import ProviderSession
from dss_dispatcher.inference import InferenceClient, InferenceFailed


class FlakyServer:
    """Answers each request with the next (status, headers, body) of a script, then 200."""

    def __init__(self, script, final=(200, {}, b"{}")):
        self.script, self.final, self.requests = list(script), final, []
        outer = self

        class Handler(QuietHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.requests.append((self.command, self.path))
                status, headers, body = outer.script.pop(0) if outer.script else outer.final
                self.reply(status, body, headers)

            do_GET = do_POST = _answer

        self.server, self.url = serve_in_thread(Handler)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FakeSleeps(list):
    """Records the sleeps and makes them pass instantly on its own clock."""

    def __init__(self):
        super().__init__()
        self.now = 0.0

    def __call__(self, seconds):
        self.append(seconds)
        self.now += seconds

    def clock(self):
        return self.now


@pytest.fixture
def sleeps():
    return FakeSleeps()


def test_backoff_grows_with_jitter_and_honours_retry_after():
    for attempt in range(1, 8):
        window = min(30.0, 0.5 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt) for _ in range(50)]
        assert all(window / 2 <= d <= window for d in delays)
        assert len(set(delays)) > 1
    assert backoff_delay(1, retry_after=7) == 7
    assert backoff_delay(1, retry_after=10_000) == 30.0


def test_dss_503_and_500_are_retried_until_success(sleeps):
    server = FlakyServer([(503, {"Retry-After": "3"}, b"busy"), (500, {}, b"oops")],
                         final=(200, {}, b"claimed"))
    try:
        client = DSSClient(server.url)
        status = retry(lambda: client.provider_status(5), budget=60, what="status",
                       sleep=sleeps, clock=sleeps.clock)
    finally:
        server.close()
    assert status == "claimed"
    assert len(server.requests) == 3
    assert sleeps[0] >= 3.0          # Retry-After is a floor
    assert 0.5 <= sleeps[1] <= 1.0   # second window


def test_dss_4xx_is_not_retried(sleeps):
    server = FlakyServer([(400, {}, b"Ticket 5 not found")])
    try:
        with pytest.raises(DSSError) as caught:
            retry(lambda: DSSClient(server.url).provider_status(5), 60, "status", sleep=sleeps, clock=sleeps.clock)
    finally:
        server.close()
    assert not isinstance(caught.value, DSSTransientError) and sleeps == []


def test_gives_up_when_the_budget_is_spent(sleeps):
    server = FlakyServer([(503, {"Retry-After": "20"}, b"busy")] * 5)
    try:
        with pytest.raises(DSSTransientError):
            retry(lambda: DSSClient(server.url).provider_status(5), 30, "status", sleep=sleeps, clock=sleeps.clock)
    finally:
        server.close()
    assert sleeps == [20.0]   # a second 20 s wait would overrun the 30 s budget


def test_inference_queue_full_is_retried_then_submitted(tmp_path, sleeps):
    image = tmp_path / "ct.nii.gz"
    image.write_bytes(b"not really an image")
    endpoint = json.dumps({"Endpoint": "/lung_segmentation/inference/abc"}).encode()
    server = FlakyServer([(503, {"Retry-After": "2"}, b'{"error": "queue full"}'),
                          (502, {}, b"<html>bad gateway</html>")], final=(200, {}, endpoint))
    client = InferenceClient(server.url, "/lung_segmentation/inference")
    try:
        job = retry(lambda: client.submit(image), 60, "submit", sleep=sleeps, clock=sleeps.clock)
    finally:
        server.close()
    assert job == "/lung_segmentation/inference/abc"
    assert [r[0] for r in server.requests] == ["POST"] * 3
    assert server.requests[0][1] == "/lung_segmentation/inference?format=nii.gz"
    assert sleeps[0] >= 2.0


def test_session_logs_in_again_and_retries_a_typed_client_call(sleeps):
    login = (200, {}, b"logged in as provider@lab.org")
    server = FlakyServer([login, (401, {}, b"not logged in"), login,
                          (503, {"Retry-After": "2"}, b"busy")], final=(200, {}, b"claimed"))
    session = ProviderSession(server.url, "t" * 48, retry_budget=60, sleep=sleeps)
    try:
        status = session.call(DSSClient.provider_status, 5)
    finally:
        session.close()
        server.close()
    assert status == "claimed"
    assert [r[0] for r in server.requests] == ["POST", "GET", "POST", "GET", "GET"]
    assert len(sleeps) == 1 and sleeps[0] >= 2.0


def test_one_transient_error_for_the_dss_and_the_inference_server():
    assert sdk.TransientError is TransientError
    busy = DSSTransientError(503, "busy", retry_after=4.0)
    assert isinstance(busy, TransientError) and busy.retry_after == 4.0
    assert str(busy) == "HTTP 503: busy"


def test_inference_retry_after_as_an_http_date_is_a_floor(tmp_path):
    image = tmp_path / "ct.nii.gz"
    image.write_bytes(b"x")
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    server = FlakyServer([(503, {"Retry-After": later}, b'{"error": "queue full"}')])
    client = InferenceClient(server.url, "/lung_segmentation/inference")
    try:
        with pytest.raises(TransientError, match="queue full") as caught:
            client.submit(image)
    finally:
        server.close()
    assert 60 < caught.value.retry_after <= 120


def test_inference_bad_input_and_failed_jobs_are_permanent(tmp_path):
    image = tmp_path / "ct.nii.gz"
    image.write_bytes(b"x")
    server = FlakyServer([(400, {}, b'{"error": "not a 3-D image"}'),
                          (500, {}, b'{"error": "model crashed", "status": "failed"}')])
    client = InferenceClient(server.url, "/lung_segmentation/inference")
    try:
        with pytest.raises(InferenceFailed, match="not a 3-D image"):
            client.submit(image)
        with pytest.raises(InferenceFailed, match="model crashed"):
            client.poll("/lung_segmentation/inference/abc", tmp_path)
    finally:
        server.close()


def test_unreachable_inference_server_is_transient(tmp_path):
    from helpers import free_port
    image = tmp_path / "ct.nii.gz"
    image.write_bytes(b"x")
    client = InferenceClient(f"http://127.0.0.1:{free_port()}", "/x/inference")
    with pytest.raises(TransientError, match="unreachable"):
        client.submit(image)


@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b'{"progress": "abc"}',
                                  b'["running"]', b'{"progress": "nan"}'])
def test_a_job_status_that_is_not_a_job_state_is_transient_and_named(tmp_path, body):
    server = FlakyServer([(202, {}, body)])
    client = InferenceClient(server.url, "/lung_segmentation/inference")
    try:
        with pytest.raises(TransientError, match="the inference server answered a job's status "
                                                 "with .*not a job state") as raised:
            client.poll("/lung_segmentation/inference/abc", tmp_path)
    finally:
        server.close()
    assert body.decode()[:10] in str(raised.value)


def test_an_unreadable_image_is_named_without_the_inference_servers_paths(tmp_path):
    image = tmp_path / "ct.nii.gz"
    image.write_bytes(b"x")
    answer = (b'{"error": "cannot read the image: Unable to determine ImageIO reader for '
              b'\\"/tmp/dss-inference-x1/job_7/input.nii\\""}')
    server = FlakyServer([(422, {}, answer),
                          (500, {}, b'{"error": "model crashed in /srv/models/lungs.py", '
                                    b'"status": "failed"}')])
    client = InferenceClient(server.url, "/lung_segmentation/inference")
    try:
        with pytest.raises(InferenceFailed) as unreadable:
            client.submit(image)
        with pytest.raises(InferenceFailed) as crashed:
            client.poll("/lung_segmentation/inference/abc", tmp_path)
    finally:
        server.close()
    assert str(unreadable.value) == ('cannot read the image: Unable to determine ImageIO reader '
                                     'for "input.nii"')
    assert "/tmp/dss-inference-x1/job_7/input.nii" in unreadable.value.detail
    assert str(crashed.value) == "model crashed in lungs.py (inference server, HTTP 500)"
    assert "/srv/models/lungs.py" in crashed.value.detail
