"""The job pool over real HTTP on loopback: queue limits, cancellation, time limits, retention."""
from __future__ import annotations

import os
import time

import pytest
import requests

from inference_testing import ct_like_image, wait_finished, write_image


@pytest.fixture
def image(tmp_path):
    return write_image(ct_like_image(), tmp_path / "ct.nrrd")


def post(url, model, image):
    with open(image, "rb") as body:
        return requests.post(f"{url}/{model}/inference", files={"itk_image": ("ct.nrrd", body)},
                             timeout=30)


def endpoint_of(url, model, image):
    response = post(url, model, image)
    assert response.status_code == 200, response.text
    return url + response.json()["Endpoint"]


def get(endpoint):
    return lambda: requests.get(endpoint, timeout=30)


def job_dirs(output):
    return sorted(p.name for p in output.iterdir() if not p.name.startswith("."))


def test_a_full_queue_answers_503_with_retry_after(live_server, gate, image):
    release, started = gate
    url = live_server(workers=1, queue_size=2)
    running = endpoint_of(url, "gated", image)
    assert started.wait(10)
    waiting = [endpoint_of(url, "lung_segmentation", image) for _ in range(2)]
    refused = post(url, "lung_segmentation", image)
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) >= 1
    assert "queue is full" in refused.json()["error"]
    assert 'status="rejected"} 1.0' in requests.get(url + "/metrics", timeout=10).text
    release.set()
    for endpoint in [running, *waiting]:
        assert wait_finished(get(endpoint)).status_code == 200
    assert post(url, "lung_segmentation", image).status_code == 200


def test_cancelling_a_running_job_stops_it_and_removes_its_files(live_server, gate, image,
                                                                 tmp_path):
    release, started = gate
    url = live_server(workers=1)
    endpoint = endpoint_of(url, "gated", image)
    assert started.wait(10)
    response = requests.delete(endpoint, timeout=10)
    assert response.status_code == 202 and response.json()["status"] == "cancelling"
    stopped = wait_finished(get(endpoint))
    assert stopped.status_code == 410
    assert stopped.json() == {"error": "the job was cancelled", "status": "cancelled"}
    assert job_dirs(tmp_path / "output") == []
    # the worker is free again
    assert wait_finished(get(endpoint_of(url, "lung_segmentation", image))).status_code == 200


def test_cancelling_a_queued_job_frees_its_place(live_server, gate, image, tmp_path):
    release, started = gate
    url = live_server(workers=1, queue_size=1)
    running = endpoint_of(url, "gated", image)
    assert started.wait(10)
    queued = endpoint_of(url, "lung_segmentation", image)
    assert post(url, "lung_segmentation", image).status_code == 503
    response = requests.delete(queued, timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "cancelled"}
    assert requests.get(queued, timeout=10).status_code == 410
    replacement = endpoint_of(url, "lung_segmentation", image)
    release.set()
    assert wait_finished(get(running)).status_code == 200
    assert wait_finished(get(replacement)).status_code == 200


def test_deleting_a_finished_job_removes_its_result(live_server, image, tmp_path):
    url = live_server()
    endpoint = endpoint_of(url, "lung_segmentation", image)
    assert wait_finished(get(endpoint)).status_code == 200
    assert len(job_dirs(tmp_path / "output")) == 1
    assert requests.delete(endpoint, timeout=10).json() == {"status": "deleted"}
    assert requests.get(endpoint, timeout=10).status_code == 404
    assert job_dirs(tmp_path / "output") == []


def test_a_job_over_its_time_limit_fails_with_504(live_server, image, tmp_path):
    url = live_server(job_timeout=0.3)
    endpoint = endpoint_of(url, "gated", image)
    response = wait_finished(get(endpoint))
    assert response.status_code == 504
    assert response.json()["status"] == "failed"
    assert "time limit of 0.3 s" in response.json()["error"]
    assert 'status="timeout"} 1.0' in requests.get(url + "/metrics", timeout=10).text
    # inputs are gone, nothing else was written
    job = tmp_path / "output" / endpoint.rsplit("/", 1)[1]
    assert list(job.iterdir()) == []


def test_finished_jobs_are_removed_after_the_retention_time(live_server, image, tmp_path):
    url = live_server(result_retention=0.5)
    endpoint = endpoint_of(url, "lung_segmentation", image)
    assert wait_finished(get(endpoint)).status_code == 200
    deadline = time.monotonic() + 10
    while requests.get(endpoint, timeout=10).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert requests.get(endpoint, timeout=10).status_code == 404
    assert job_dirs(tmp_path / "output") == []


def test_directories_left_by_an_earlier_process_are_removed_after_the_retention_time(
        make_app, tmp_path):
    output = tmp_path / "output"
    old, recent, other = output / ("a" * 32), output / ("b" * 32), output / "keep-me"
    for path in (old, recent, other):
        path.mkdir(parents=True)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    make_app(result_retention=0)
    assert job_dirs(output) == sorted([recent.name, other.name])


def test_job_files_stay_inside_the_output_directory(live_server, image, tmp_path):
    """Uploads are spooled, extracted and written under INFERENCE_OUTPUT_DIR only."""
    url = live_server()
    before = {p.name for p in tmp_path.iterdir()}
    big = write_image(ct_like_image(size=(128, 128, 40)), tmp_path / "big.nrrd")
    endpoint = endpoint_of(url, "nodule_detection", big)
    result = wait_finished(get(endpoint))
    assert result.status_code == 200
    assert {p.name for p in tmp_path.iterdir()} - before == {"big.nrrd"}
    assert (tmp_path / "output" / ".uploads").is_dir()  # where the upload was spooled
    job = tmp_path / "output" / endpoint.rsplit("/", 1)[1]
    assert sorted(p.name for p in job.iterdir()) == ["ct_nodule_detection.nrrd", "report.json"]
    assert requests.get(endpoint + "/report", timeout=10).json()["counts"]["air"] > 0
