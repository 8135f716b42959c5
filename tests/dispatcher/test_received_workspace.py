"""A ticket's workspace names its layers by path; on the dispatcher those paths may only lead
into the ticket's own input folder. A layer pointing at any other file on the host (another
ticket's CT in the server's datastore) fails the ticket and is never read or returned."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dispatcher_fakes import SPEC, FakeProviderSession, job_settings, lung_job
from dss_client.workspace import Workspace


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 8, 8), dtype=np.int16)), str(path))
    return path


def _workspace_naming(image: Path, where: Path, save_location: str) -> Path:
    """A workspace in `where` whose main layer's AbsolutePath is `image` (anywhere)."""
    saved = Workspace.for_image(image).save(where / "ticket.itksnap")
    text = saved.read_text().replace(f'value="{saved.parent}"', f'value="{save_location}"')
    saved.write_text(text)
    return saved


@pytest.fixture
def secret(tmp_path) -> Path:
    """Another user's CT elsewhere on the dispatcher host."""
    return _image(tmp_path / "datastore" / "tickets" / "00000001" / "input" / "secret_ct.nii.gz")


def test_a_layer_outside_the_folder_is_not_found(tmp_path, secret):
    received = _workspace_naming(secret, tmp_path / "input", "/nonexistent/place")
    [layer] = Workspace.load_received(received).layers
    assert not layer.path.is_file()
    assert layer.path.name == "secret_ct.nii.gz"
    assert layer.path.is_relative_to(received.parent)
    assert Workspace.load(received).layers[0].path == secret, "the CLI keeps ITK-SNAP's rule"


def test_a_relative_escape_is_not_followed(tmp_path, secret):
    # SaveLocation chosen so that the moved-workspace rule leads to ../datastore/...
    received = _workspace_naming(secret, tmp_path / "input", str(tmp_path / "elsewhere"))
    [layer] = Workspace.load_received(received).layers
    assert not layer.path.is_file()


def test_an_uploaded_layer_is_found_by_its_name(tmp_path, secret):
    received = _workspace_naming(secret, tmp_path / "input", "C:\\Users\\me\\scans")
    shutil.copy(secret, tmp_path / "input" / "secret_ct.nii.gz")
    [layer] = Workspace.load_received(received).layers
    assert layer.path == (tmp_path / "input" / "secret_ct.nii.gz").resolve()


def test_the_ticket_fails_without_reading_the_outside_file(tmp_path, secret):
    received = _workspace_naming(secret, tmp_path / "upload", "/nonexistent/place")
    session = FakeProviderSession([received])
    outcome = lung_job(job_settings(tmp_path / "work"), SPEC, session, 5, threading.Event()).run()
    assert outcome == "failed"
    errors = [call[3] for call in session.calls if call[0] == "log_message" and call[2] == "error"]
    assert errors == ["The image of layer Layers.Layer[000] (secret_ct.nii.gz) was not uploaded "
                      "with the workspace. Submit the ticket again."]
    assert ("set_status", 5, "failed") in session.calls
    assert not any(call[0] in ("upload_result", "attach") for call in session.calls)
