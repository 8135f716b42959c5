"""A ticket's parameters reach the inference server as the model's options, and the result
workspace does not carry them on (another service would refuse names it does not declare)."""
from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dispatcher_fakes import SPEC, FakeProviderSession, InferenceStub, job_settings, lung_job
from dss_client.workspace import Workspace

NODULES = replace(SPEC, service="LungNoduleDetection", endpoint="/nodule_detection/inference",
                  output="nodules")
PARAMETERS = {"min_score": 0.5, "min_diameter_mm": 4.0, "max_diameter_mm": 20.0}


def _nii_gz(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 8, 8), np.uint8)), str(path))
    return path


@pytest.fixture(scope="module")
def inference(tmp_path_factory):
    stub = InferenceStub(_nii_gz(tmp_path_factory.mktemp("label") / "l.nii.gz").read_bytes())
    yield stub
    stub.server.shutdown()


def _run(tmp_path, inference, spec, parameters) -> FakeProviderSession:
    """One ticket whose workspace stores `parameters` and a scan name, as `dss submit` does."""
    workspace = Workspace.for_image(_nii_gz(tmp_path / "upload" / "ct.nii.gz"))
    workspace.parameters = parameters
    workspace.scan_name = "chest ct.nii.gz"
    session = FakeProviderSession(workspace.export(tmp_path / "export", "ws.itksnap"),
                                  parameters=parameters)
    outcome = lung_job(job_settings(tmp_path / "work"), replace(spec, inference_url=inference.url),
                       session, 7, threading.Event()).run()
    assert outcome == "success", session.named("log_message")
    return session


def test_the_nodule_tickets_parameters_are_the_inference_jobs_options(tmp_path, inference):
    _run(tmp_path, inference, NODULES, PARAMETERS)
    assert inference.forms[-1] == {"min_score": "0.5", "min_diameter_mm": "4.0",
                                   "max_diameter_mm": "20.0"}


def test_the_result_workspace_drops_the_parameters_and_keeps_the_scan_name(tmp_path, inference):
    session = _run(tmp_path, inference, NODULES, PARAMETERS)
    result = tmp_path / "ticket_00000007_results.itksnap"
    result.write_bytes(session.uploaded[result.name])
    workspace = Workspace.load(result)
    assert workspace.parameters == {}
    assert workspace.scan_name == "chest ct.nii.gz"
