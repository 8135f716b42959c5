"""End to end, all real processes: submit a phantom CT with the client, let a dispatcher run
it through the inference server, download the result workspace and check it against the
phantom's truth. Then the failure paths: a dispatcher killed mid-ticket, the inference server
down, a ticket deleted while it runs."""
from __future__ import annotations

import time

import numpy as np
import pytest
import requests
import SimpleITK as sitk

from dss_client.workspace import Workspace
from helpers import CT_SAMPLES, free_port, wait_for_status

pytestmark = pytest.mark.slow


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum())


def _result_workspace(client, ticket_id, dest):
    paths = client.download(ticket_id, "results", dest)
    workspaces = [p for p in paths if p.suffix == ".itksnap"]
    assert [p.name for p in workspaces] == [f"ticket_{ticket_id:08d}_results.itksnap"]
    workspace = Workspace.load(workspaces[0])
    workspace.validate()           # what ITK-SNAP checks when it opens a workspace
    return workspace, paths


def _segmentation(workspace):
    (layer,) = [each for each in workspace.layers if each.role == "SegmentationRole"]
    return layer, sitk.GetArrayFromImage(sitk.ReadImage(str(layer.path)))


def _log(client, ticket_id):
    entries = client.log(ticket_id)
    return entries, " | ".join(e.message for e in entries)


def test_lungs_and_nodules_end_to_end(stack, phantom_ct, tmp_path):
    ct_path, phantom = phantom_ct
    # the optional fast path: inputs read from the server's datastore (DSS_WORKERS=2 too)
    dispatcher = stack.dispatcher("main", DSS_SHARED_DATASTORE=stack.server_env["DSS_DATASTORE"],
                                  DSS_WORKERS="2")
    user = stack.user()
    lungs_id = user.submit_workspace(ct_path, "LungSegmentation")
    nodules_id = user.submit_workspace(ct_path, "LungNoduleDetection")
    assert wait_for_status(user, lungs_id, {"success", "failed"}) == "success", _log(user, lungs_id)[1]
    assert wait_for_status(user, nodules_id, {"success", "failed"}) == "success", \
        _log(user, nodules_id)[1]

    # lungs: the result workspace holds the input and a new segmentation layer, right = 1
    workspace, paths = _result_workspace(user, lungs_id, tmp_path / "lungs")
    assert [each.role for each in workspace.layers] == ["MainRole", "SegmentationRole"]
    assert all(p.parent == tmp_path / "lungs" for p in [each.path for each in workspace.layers])
    layer, labels = _segmentation(workspace)
    assert labels.shape == phantom.lungs.shape
    for value in (1, 2):
        assert _dice(labels == value, phantom.lungs == value) > 0.85, f"label {value}"
    assert workspace.label_table()[1][0] == "right lung"
    assert workspace.label_table()[2][0] == "left lung"
    entries, text = _log(user, lungs_id)
    assert "Lung volumes: right" in text and " L" in text
    attached = [a for e in entries for a in user.log_attachments(e.id)]
    assert [a.mime_type for a in attached] == ["image/png"]
    assert requests.get(attached[0].url, timeout=10).content[:8] == b"\x89PNG\r\n\x1a\n"
    assert user.progress(lungs_id) == 1.0

    # nodules: one label per nodule, a landmark at each centre, report attachments
    workspace, _ = _result_workspace(user, nodules_id, tmp_path / "nodules")
    layer, labels = _segmentation(workspace)
    names = workspace.label_table()
    landmarks = workspace.landmarks
    assert len(landmarks) == len(names) >= 1
    assert sorted(names.values())[0][0] == "nodule 1"
    centres = [np.array(workspace.landmark_point_mm(m)) for m in landmarks]
    truths = [(np.array(t.center_mm), t.diameter_mm) for t in phantom.nodules]
    for centre in centres:      # every landmark marks a real nodule ...
        assert any(np.linalg.norm(centre - c) < d / 2 + 6 for c, d in truths), (centre, truths)
    biggest, size = max(truths, key=lambda t: t[1])   # ... and the biggest one is found
    assert min(np.linalg.norm(c - biggest) for c in centres) < size / 2
    entries, text = _log(user, nodules_id)
    assert "nodule" in text and " mm" in text
    mimes = sorted(a.mime_type for e in entries for a in user.log_attachments(e.id))
    assert mimes == ["application/json", "image/png", "text/csv"]

    assert "input copied from the shared datastore" in dispatcher.log_tail(100_000)
    metrics = requests.get(dispatcher.metrics_url, timeout=5).text
    assert 'dss_dispatcher_tickets_total{outcome="success",service="LungSegmentation"} 1.0' in metrics
    dispatcher.stop()


def test_killed_dispatcher_ticket_comes_back_and_completes_once(stack, phantom_ct, tmp_path):
    user = stack.user()
    dead = f"http://127.0.0.1:{free_port()}"
    # this dispatcher gets stuck retrying an unreachable inference server: a ticket mid-run
    doomed = stack.dispatcher("doomed", inference_url=dead, DSS_RETRY_BUDGET="600")
    ticket_id = user.submit_workspace(phantom_ct[0], "LungSegmentation")
    wait_for_status(user, ticket_id, "claimed", timeout=60)
    deadline = time.monotonic() + 30
    while user.progress(ticket_id) < 0.1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert user.progress(ticket_id) >= 0.1      # download done, inference under way
    doomed.kill()

    rescuer = stack.dispatcher("rescuer")
    assert wait_for_status(user, ticket_id, {"success", "failed"}, timeout=120) == "success"
    entries, text = _log(user, ticket_id)
    assert "claim expired" in text
    assert text.count("Lung volumes") == 1
    names = [f.name for f in user.files(ticket_id, "results")]
    assert len(names) == len(set(names)) == 3     # workspace + CT + segmentation, once each
    rescuer.stop()


def test_sigterm_releases_the_ticket_at_once_and_another_dispatcher_completes_it(stack, phantom_ct):
    user = stack.user()
    waiting = stack.dispatcher("sigterm", inference_url=f"http://127.0.0.1:{free_port()}",
                               DSS_RETRY_BUDGET="600")
    ticket_id = user.submit_workspace(phantom_ct[0], "LungSegmentation")
    wait_for_status(user, ticket_id, "claimed", timeout=60)
    time.sleep(1)                                   # in the inference stage, retrying
    started = time.monotonic()
    waiting.process.terminate()
    assert waiting.process.wait(20) == 0
    assert time.monotonic() - started < 10
    # released, not left to the claim lease: ready at once, no expiry in the log
    assert user.status(ticket_id) == "ready"
    entries, text = _log(user, ticket_id)
    assert "Released by provider e2e-lab (instance sigterm is shutting down); back in the queue" \
        in text
    assert "claim expired" not in text
    assert "released the ticket back to the queue" in waiting.log_tail(100_000)
    assert list((stack.tmp / "work-sigterm").glob("ticket_*")) == [], "scratch folder removed"
    rescuer = stack.dispatcher("after-sigterm")
    assert wait_for_status(user, ticket_id, {"success", "failed"}, timeout=120) == "success"
    entries, text = _log(user, ticket_id)
    assert "claim expired" not in text and text.count("Lung volumes") == 1
    rescuer.stop()


def test_inference_server_down_fails_the_ticket_clearly(stack, phantom_ct):
    user = stack.user()
    dispatcher = stack.dispatcher("no-inference", inference_url=f"http://127.0.0.1:{free_port()}",
                                  DSS_RETRY_BUDGET="3")
    ticket_id = user.submit_workspace(phantom_ct[0], "LungSegmentation")
    assert wait_for_status(user, ticket_id, {"success", "failed"}, timeout=90) == "failed"
    entries, text = _log(user, ticket_id)
    (error,) = [e for e in entries if e.category == "error"]
    assert "unreachable" in error.message and "Retry the ticket later" in error.message
    assert "retry" in dispatcher.log_tail()          # it did retry before giving up
    assert user.files(ticket_id, "results") == []
    dispatcher.stop()


def test_deleted_ticket_stops_the_work(stack, phantom_ct):
    user = stack.user()
    dispatcher = stack.dispatcher("cancel", inference_url=f"http://127.0.0.1:{free_port()}",
                                  DSS_RETRY_BUDGET="600")
    ticket_id = user.submit_workspace(phantom_ct[0], "LungNoduleDetection")
    wait_for_status(user, ticket_id, "claimed", timeout=60)
    user.delete(ticket_id)
    deadline = time.monotonic() + 60
    while "dropping the ticket" not in dispatcher.log_tail() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "dropping the ticket: the ticket is now 'deleted'" in dispatcher.log_tail() or \
        "dropping the ticket: the ticket is no longer accessible" in dispatcher.log_tail()
    assert user.status(ticket_id) == "deleted"
    dispatcher.stop()


def test_real_chest_ct_through_both_services(stack, tmp_path):
    """The 3 mm chest CT sample: plausible lung volumes, its ~24 mm nodule found."""
    sample = CT_SAMPLES / "chest_ct_4dct_phase00_3mm.nii.gz"
    if not sample.exists():
        pytest.skip(f"CT sample {sample} is not available")
    dispatcher = stack.dispatcher("real-ct")
    user = stack.user()
    lungs_id = user.submit_workspace(sample, "LungSegmentation")
    nodules_id = user.submit_workspace(sample, "LungNoduleDetection")
    for ticket_id in (lungs_id, nodules_id):
        assert wait_for_status(user, ticket_id, {"success", "failed"}, timeout=300) == "success", \
            _log(user, ticket_id)[1]
    workspace, _ = _result_workspace(user, lungs_id, tmp_path / "lungs")
    layer, labels = _segmentation(workspace)
    litres = np.prod(sitk.ReadImage(str(layer.path)).GetSpacing()) / 1e6
    right, left = ((labels == value).sum() * litres for value in (1, 2))
    assert 2.0 < right < 4.5 and 1.6 < left < 4.0, (right, left)   # the sample: ~3.0 l and ~2.5 l
    workspace, _ = _result_workspace(user, nodules_id, tmp_path / "nodules")
    known_nodule = np.array((-87.9, 82.1, -8.5))
    centres = [np.array(workspace.landmark_point_mm(m)) for m in workspace.landmarks]
    assert min(np.linalg.norm(c - known_nodule) for c in centres) < 12
    dispatcher.stop()
