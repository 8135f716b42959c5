"""The inference API through the Flask test client: submit, poll, result, report, errors."""
from __future__ import annotations

import io
import threading
import time
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from dss_inference import create_app
from helpers import CT_SAMPLES
from inference_testing import ct_like_image, geometry, wait_finished, write_image


def upload(path, name=None):
    return {"itk_image": (io.BytesIO(path.read_bytes()), name or path.name)}


def submit(client, tmp_path, model="lung_segmentation", name="ct.nrrd", query=""):
    path = write_image(ct_like_image(), tmp_path / name)
    response = client.post(f"/{model}/inference{query}", data=upload(path),
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["Endpoint"]


def result_image(response, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(response.data)
    return sitk.ReadImage(str(path))


@pytest.mark.parametrize("model", ["lung_segmentation", "nodule_detection"])
def test_a_job_runs_and_its_result_keeps_the_input_geometry(client, tmp_path, model):
    endpoint = submit(client, tmp_path, model)
    assert endpoint.startswith(f"/{model}/inference/")
    response = wait_finished(lambda: client.get(endpoint))
    assert response.status_code == 200, response.get_json()
    assert response.headers["Content-Disposition"] == f"attachment; filename=ct_{model}.nrrd"
    labels = result_image(response, tmp_path, "result.nrrd")
    source = sitk.ReadImage(str(tmp_path / "ct.nrrd"))
    assert geometry(labels) == geometry(source)
    hu = sitk.GetArrayFromImage(source)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(labels) == 2, hu > 300)


def test_progress_is_reported_while_a_job_waits_and_runs(client, tmp_path, gate):
    release, started = gate
    running = submit(client, tmp_path, "gated")
    assert started.wait(10)
    queued = submit(client, tmp_path, "lung_segmentation")
    body = client.get(running).get_json()
    assert client.get(running).status_code == 202
    assert body["status"] == "running" and body["stage"] == "waiting"
    assert 0 < body["progress"] < 1
    assert client.get(queued).get_json() == {"status": "queued", "stage": "queued",
                                             "progress": 0.0, "model": "lung_segmentation"}
    assert client.get(queued + "/report").status_code == 202
    release.set()
    assert wait_finished(lambda: client.get(queued)).status_code == 200


def test_nifti_results_on_request_at_submit_or_download(client, tmp_path):
    endpoint = submit(client, tmp_path, query="?format=nii.gz")
    response = wait_finished(lambda: client.get(endpoint))
    assert response.headers["Content-Disposition"].endswith("ct_lung_segmentation.nii.gz")
    assert response.data[:2] == b"\x1f\x8b"
    nrrd = client.get(endpoint + "?format=nrrd")
    assert nrrd.status_code == 200 and nrrd.data.startswith(b"NRRD")
    first, second = result_image(response, tmp_path, "a.nii.gz"), result_image(nrrd, tmp_path, "b.nrrd")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(first), sitk.GetArrayFromImage(second))
    assert first.GetSize() == second.GetSize()


def test_the_report_is_served_as_json_when_done(client, tmp_path):
    endpoint = submit(client, tmp_path)
    wait_finished(lambda: client.get(endpoint))
    report = client.get(endpoint + "/report").get_json()
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "ct.nrrd")))
    assert report == {"counts": {"air": int((labels < -500).sum()), "dense": int((labels > 300).sum())}}


def test_a_dicom_zip_upload_runs(client, tmp_path):
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted((CT_SAMPLES / "chest_ct_4dct_phase00_dicom_subset").iterdir()):
            out.write(path, "DICOM/" + path.name)
    response = client.post("/lung_segmentation/inference", data=upload(archive),
                           content_type="multipart/form-data")
    endpoint = response.get_json()["Endpoint"]
    result = wait_finished(lambda: client.get(endpoint))
    assert result.status_code == 200
    assert result.headers["Content-Disposition"].endswith("series_lung_segmentation.nrrd")
    assert result_image(result, tmp_path, "r.nrrd").GetSize() == (512, 512, 12)


def test_bad_requests_get_json_errors(client, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    cases = [
        (client.post("/lung_segmentation/inference", data={}), 400, "itk_image"),
        (client.post("/lung_segmentation/inference", data=upload(text),
                     content_type="multipart/form-data"), 415, "unsupported"),
        (client.post("/lung_segmentation/inference", data=upload(text, "ct.nii.gz"),
                     content_type="multipart/form-data"), 422, "not a readable image"),
        (client.post("/lung_segmentation/inference?format=png",
                     data=upload(write_image(ct_like_image(), tmp_path / "ct.mha")),
                     content_type="multipart/form-data"), 400, "result format"),
        (client.post("/no_such_model/inference", data={}), 404, "unknown model"),
        (client.get("/lung_segmentation/inference/" + "0" * 32), 404, "no job"),
        (client.get("/lung_segmentation/inference/" + "0" * 32 + "/report"), 404, "no job"),
        (client.delete("/lung_segmentation/inference/whatever"), 404, "no job"),
        (client.get("/nowhere"), 404, "not found"),
        (client.put("/lung_segmentation/inference"), 405, "method"),
    ]
    for response, status, words in cases:
        assert response.status_code == status, response.data
        assert words in response.get_json()["error"].lower()


def test_model_options_from_the_form_and_the_query_reach_the_model(client, tmp_path):
    path = write_image(ct_like_image(), tmp_path / "ct.nrrd")
    response = client.post("/nodule_detection/inference?max_diameter_mm=12.5",
                           data={**upload(path), "min_score": "0.5"},
                           content_type="multipart/form-data")
    endpoint = response.get_json()["Endpoint"]
    assert wait_finished(lambda: client.get(endpoint)).status_code == 200
    report = client.get(endpoint + "/report").get_json()
    assert report["options"] == {"min_score": 0.5, "max_diameter_mm": 12.5}


@pytest.mark.parametrize("model, fields, words", [
    ("nodule_detection", {"min_scor": "0.5"}, "unknown option 'min_scor' for model "
     "'nodule_detection'; accepted: min_score, min_diameter_mm, max_diameter_mm"),
    ("nodule_detection", {"min_score": "high"}, "option 'min_score': expected a number from "
     "0 to 1, got 'high'"),
    ("nodule_detection", {"min_score": "1.5"}, "from 0 to 1, got '1.5'"),
    ("nodule_detection", {"max_diameter_mm": "nan"}, "from 0 to 100, got 'nan'"),
    ("nodule_detection", {"min_diameter_mm": "inf"}, "from 0 to 100, got 'inf'"),
    ("lung_segmentation", {"min_score": "0.5"}, "accepted: none"),
])
def test_bad_model_options_are_400_naming_them(client, tmp_path, model, fields, words):
    path = write_image(ct_like_image(), tmp_path / "ct.nrrd")
    response = client.post(f"/{model}/inference", data={**upload(path), **fields},
                           content_type="multipart/form-data")
    assert response.status_code == 400 and words in response.get_json()["error"]
    output = tmp_path / "output"
    assert [p.name for p in output.iterdir() if not p.name.startswith(".")] == [], "no job"


def test_a_2d_upload_is_refused_and_leaves_no_files(client, tmp_path, make_app):
    path = tmp_path / "slice.nrrd"
    sitk.WriteImage(sitk.Image(32, 32, sitk.sitkInt16), str(path))
    response = client.post("/lung_segmentation/inference", data=upload(path),
                           content_type="multipart/form-data")
    assert response.status_code == 422 and "3-D" in response.get_json()["error"]
    output = tmp_path / "output"
    assert [p.name for p in output.iterdir() if not p.name.startswith(".")] == []


def test_a_job_of_one_model_is_not_found_under_another(client, tmp_path):
    endpoint = submit(client, tmp_path, "lung_segmentation")
    other = endpoint.replace("lung_segmentation", "nodule_detection")
    assert client.get(other).status_code == 404


def test_a_failing_model_fails_the_job_with_a_json_reason(client, tmp_path):
    endpoint = submit(client, tmp_path, "crashing")
    response = wait_finished(lambda: client.get(endpoint))
    assert response.status_code == 500
    body = response.get_json()
    assert body["status"] == "failed"
    assert "ValueError: this model always fails" in body["error"]
    assert "Traceback" not in body["error"]
    assert client.get(endpoint + "/report").status_code == 500
    # the worker survives and runs the next job
    endpoint = submit(client, tmp_path)
    assert wait_finished(lambda: client.get(endpoint)).status_code == 200


def test_cuda_out_of_memory_is_retried_on_the_cpu(client, tmp_path):
    endpoint = submit(client, tmp_path, "oom_once")
    assert wait_finished(lambda: client.get(endpoint)).status_code == 200


def test_cuda_out_of_memory_twice_fails_with_a_clear_message(client, tmp_path):
    endpoint = submit(client, tmp_path, "oom_always")
    response = wait_finished(lambda: client.get(endpoint))
    assert response.status_code == 500
    assert "out of GPU memory" in response.get_json()["error"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for a real out-of-memory error")
def test_a_real_cuda_out_of_memory_error_is_retried_on_the_cpu(make_app, tmp_path):
    client = make_app(device="cuda").test_client()
    endpoint = submit(client, tmp_path, "cuda_greedy")
    assert wait_finished(lambda: client.get(endpoint)).status_code == 200
    devices = {m["device"] for m in client.get("/models").get_json()["models"]}
    assert "cpu" in devices and any(d.startswith("cuda") for d in devices)
    assert "dss_inference_gpu_memory_allocated_bytes" in client.get("/metrics").data.decode()


def test_uploads_over_the_size_cap_are_413(make_app, tmp_path):
    client = make_app(max_upload_bytes=2000).test_client()
    path = write_image(ct_like_image(), tmp_path / "ct.nrrd")
    response = client.post("/lung_segmentation/inference", data=upload(path),
                           content_type="multipart/form-data")
    assert response.status_code == 413
    assert "error" in response.get_json()


def test_images_over_the_voxel_cap_are_413(make_app, tmp_path):
    client = make_app(max_voxels=1000).test_client()
    path = write_image(ct_like_image(), tmp_path / "ct.nrrd")
    response = client.post("/lung_segmentation/inference", data=upload(path),
                           content_type="multipart/form-data")
    assert response.status_code == 413
    assert "4800 voxels" in response.get_json()["error"]


@pytest.mark.parametrize("name, content, words", [
    ("junk.nii", b"\x01\x02 not a NIfTI header " * 100, "is not recognized as a NIFTI file"),
    ("junk.mha", b"ObjectType = Image\nNDims = 3\nElementType = MET_UCHAR\n"
                 b"ElementDataFile = LOCAL\n" + bytes(10), "File cannot be read"),  # no DimSize
])
def test_unreadable_image_errors_do_not_show_server_paths(make_app, name, content, words):
    client = make_app().test_client()
    response = client.post("/lung_segmentation/inference",
                           data={"itk_image": (io.BytesIO(content), name)},
                           content_type="multipart/form-data")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error.startswith("not a readable image: ") and words in error, error
    assert "/" not in error, error


def test_models_health_readiness_and_metrics(client, tmp_path):
    body = client.get("/models").get_json()
    names = {m["name"]: m for m in body["models"]}
    assert names["lung_segmentation"] == {"name": "lung_segmentation", "kind": "classical",
                                          "device": "cpu"}
    assert {"torch", "SimpleITK"} <= set(body["versions"])
    assert body["ready"] is True and body["devices"] == ["cpu"]
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and "nodule_detection" in ready.get_json()["models"]
    endpoint = submit(client, tmp_path)
    wait_finished(lambda: client.get(endpoint))
    metrics = client.get("/metrics").data.decode()
    assert 'dss_inference_jobs_total{model="lung_segmentation",status="done"} 1.0' in metrics
    assert "dss_inference_queue_depth 0.0" in metrics
    assert 'dss_inference_stage_seconds_count{model="lung_segmentation",stage="threshold"} 1.0' \
        in metrics


def test_not_ready_until_the_models_are_loaded(tmp_path):
    release = threading.Event()

    def slow_loader(settings):
        release.wait(10)
        return {}

    app = create_app({"output_dir": tmp_path / "out", "device": "cpu", "load_models": slow_loader})
    client = app.test_client()
    try:
        assert client.get("/readyz").status_code == 503
        response = client.post("/lung_segmentation/inference", data={})
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert client.get("/healthz").status_code == 200
    finally:
        release.set()
        app.extensions["dss_inference"].stop()


def test_a_failing_model_loader_is_reported_by_readyz(tmp_path):
    def broken(settings):
        raise FileNotFoundError("no weights at /nowhere.pt")

    app = create_app({"output_dir": tmp_path / "out", "device": "cpu", "load_models": broken})
    client = app.test_client()
    try:
        for _ in range(500):
            response = client.get("/readyz")
            if response.get_json()["status"] == "error":
                break
            time.sleep(0.01)
        assert response.status_code == 503
        assert "no weights at /nowhere.pt" in response.get_json()["error"]
    finally:
        app.extensions["dss_inference"].stop()


@pytest.mark.parametrize("device, reason", [
    ("tpu", "INFERENCE_DEVICE must be auto, cpu, cuda or cuda:N"),
    pytest.param("cuda", "CUDA is not available", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="CUDA is available here")),
])
def test_an_unusable_device_is_reported_not_ready(tmp_path, test_models, device, reason):
    app = create_app({"output_dir": tmp_path / "out", "device": device, "load_models": test_models})
    client = app.test_client()
    try:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and reason in ready.get_json()["error"]
        posted = client.post("/lung_segmentation/inference", data={})
        assert posted.status_code == 503 and reason in posted.get_json()["error"]
    finally:
        app.extensions["dss_inference"].stop()
