"""The inference server as real processes: gunicorn with its production config, and
`python -m dss_inference` (what `make inference` runs) with the real models."""
from __future__ import annotations

import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import SimpleITK as sitk

from helpers import CT_SAMPLES, PYTHON, REPO_ROOT, ServerProcess, free_port
from inference_testing import ct_like_image, wait_finished, write_image

TESTS = REPO_ROOT / "tests"
# The ~24 mm solid nodule of the chest CT sample, world LPS mm (ct-samples README).
KNOWN_NODULE_MM = (-87.9, 82.1, -8.5)


@pytest.mark.slow
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
        assert "nodule_detection on cpu) done" in server.log_tail()
        assert server.log_tail().count("Booting worker") == 1  # one process owns the job pool


def zip_dicom_series(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, "DICOM/" + path.name)
    return target


def run_job(url: str, model: str, path: Path, query: str = "") -> tuple[requests.Response, dict]:
    with open(path, "rb") as body:
        posted = requests.post(f"{url}/{model}/inference{query}",
                               files={"itk_image": (path.name, body)}, timeout=60)
    assert posted.status_code == 200, posted.text
    endpoint = url + posted.json()["Endpoint"]
    result = wait_finished(lambda: requests.get(endpoint, timeout=60), timeout=120)
    assert result.status_code == 200, result.text
    return result, requests.get(endpoint + "/report", timeout=60).json()


@pytest.mark.slow
def test_make_inference_serves_the_real_models_on_real_ct(tmp_path):
    """`python -m dss_inference`: lungs on the 3 mm chest CT, nodules on a zipped DICOM series."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"INFERENCE_PORT": str(port), "INFERENCE_OUTPUT_DIR": str(tmp_path / "output"),
           "INFERENCE_DEVICE": "cpu"}
    chest = CT_SAMPLES / "chest_ct_4dct_phase00_3mm.nii.gz"
    series = zip_dicom_series(CT_SAMPLES / "chest_ct_4dct_phase00_dicom_subset", tmp_path / "s.zip")
    with ServerProcess([PYTHON, "-m", "dss_inference"], env, f"{url}/readyz",
                       tmp_path / "server.log", timeout=120):
        models = {m["name"]: m for m in requests.get(f"{url}/models", timeout=10).json()["models"]}
        assert {"lung_segmentation", "nodule_detection"} <= set(models)

        result, report = run_job(url, "lung_segmentation", chest, "?format=nii.gz")
        (tmp_path / "lungs.nii.gz").write_bytes(result.content)
        lungs, source = sitk.ReadImage(str(tmp_path / "lungs.nii.gz")), sitk.ReadImage(str(chest))
        assert lungs.GetSize() == source.GetSize()
        np.testing.assert_allclose(lungs.GetOrigin(), source.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(lungs.GetDirection(), source.GetDirection(), atol=1e-6)
        assert set(np.unique(sitk.GetArrayViewFromImage(lungs))) == {0, 1, 2}
        assert 1000 < report["lungs"]["right_ml"] < 6000 and 1000 < report["lungs"]["left_ml"] < 6000

        result, report = run_job(url, "nodule_detection", series)
        assert result.headers["Content-Disposition"].endswith("s_nodule_detection.nrrd")
        best = report["nodules"][0]
        assert best["label"] == 1
        assert np.linalg.norm(np.subtract(best["center_mm"], KNOWN_NODULE_MM)) < 10
