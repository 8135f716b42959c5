"""SIGTERM while the inference server computes: the dispatcher does not wait for the job (it
may take many minutes) but cancels it on the inference server and releases the ticket."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import numpy as np
import SimpleITK as sitk

from dispatcher_fakes import SPEC, FakeProviderSession, QuietHandler, job_settings, lung_job, serve_in_thread
from dss_client.workspace import Workspace


class EndlessInferenceServer:
    """Accepts the image and reports the job as running forever; records DELETEs."""

    def __init__(self):
        self.polls, self.deleted = 0, []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._json(200, {"Endpoint": "/lung_segmentation/jobs/j1"})

            def do_GET(self):
                outer.polls += 1
                self._json(202, {"status": "running", "progress": 0.3})

            def do_DELETE(self):
                outer.deleted.append(self.path)
                self._json(202, {"status": "cancelling"})

            def _json(self, status, body):
                self.reply(status, json.dumps(body).encode())

        self.server, self.url = serve_in_thread(Handler)


def test_shutdown_during_inference_cancels_the_job_and_releases_the_ticket(tmp_path):
    image = tmp_path / "upload" / "ct.nii.gz"
    image.parent.mkdir()
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 8, 8), dtype=np.int16)), str(image))
    inputs = Workspace.for_image(image).export(tmp_path / "export", "ws.itksnap")
    inference = EndlessInferenceServer()
    session = FakeProviderSession(inputs)
    stopping = threading.Event()
    spec = replace(SPEC, inference_url=inference.url)
    job = lung_job(job_settings(tmp_path / "work", inference_timeout=5.0), spec, session, 5,
                   stopping)
    runner = threading.Thread(target=lambda: setattr(job, "outcome", job.run()))
    runner.start()
    deadline = time.monotonic() + 10
    while inference.polls < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped_at = time.monotonic()
    stopping.set()
    runner.join(10)
    inference.server.shutdown()
    assert time.monotonic() - stopped_at < 2.5, "no waiting for the job to finish"
    assert job.outcome == "dropped"
    assert inference.deleted == ["/lung_segmentation/jobs/j1"]
    assert session.named("release") == [(5, "instance node is shutting down")]
    assert session.named("set_status") == []
    assert not job.workdir.exists()
