"""The inference server as real processes: gunicorn with its production config, and
`python -m dss_inference` (what `make inference` runs) with the real models."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import requests

from helpers import PYTHON, REPO_ROOT, ServerProcess, free_port
from inference_testing import ct_like_image, wait_finished, write_image

TESTS = REPO_ROOT / "tests"


def test_gunicorn_serves_with_the_production_config(tmp_path):
    port = free_port()
    env = {"INFERENCE_PORT": str(port), "INFERENCE_OUTPUT_DIR": str(tmp_path / "output"),
           "INFERENCE_DEVICE": "cpu",
           "PYTHONPATH": os.pathsep.join([str(TESTS / "inference"), str(TESTS)])}
    url = f"http://127.0.0.1:{port}"
    image = write_image(ct_like_image(), tmp_path / "ct.nii.gz")
    command = [PYTHON, "-m", "gunicorn", "-c", str(REPO_ROOT / "inference-server" / "gunicorn.conf.py"),
               "inference_testing:create_test_app()"]
    with ServerProcess(command, env, f"{url}/readyz", tmp_path / "gunicorn.log") as server:
        def run_job(_):
            with open(image, "rb") as body:
                posted = requests.post(f"{url}/nodule_detection/inference?format=nii.gz",
                                       files={"itk_image": ("ct.nii.gz", body)}, timeout=30)
            assert posted.status_code == 200, posted.text
            endpoint = url + posted.json()["Endpoint"]
            return wait_finished(lambda: requests.get(endpoint, timeout=30))

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(run_job, range(4)))
        assert [r.status_code for r in results] == [200] * 4, server.log_tail()
        assert all(r.content[:2] == b"\x1f\x8b" for r in results)
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert 'dss_inference_jobs_total{model="nodule_detection",status="done"} 4.0' in metrics
        assert "nodule_detection) done" in server.log_tail()
        assert server.log_tail().count("Booting worker") == 1  # one process owns the job pool
