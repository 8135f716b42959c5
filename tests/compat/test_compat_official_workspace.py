"""The official workspace reader (`itksnap_dss.itksnap_ws`, `registry`) opens the result
workspaces our dispatcher writes, after a real run through web server, dispatcher and inference
server; and our `dss_client.workspace` reads what the official writer saves (both directions)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from itksnap_dss import WorkspaceWrapper

from dss_client.workspace import Workspace
from dss_client.workspace_format import Registry
from helpers import wait_for_status

pytestmark = pytest.mark.slow   # the module's fixture runs two tickets through the whole stack


@pytest.fixture(scope="module")
def finished_tickets(compat_stack, tmp_path_factory):
    """A lung segmentation and a nodule detection of a small phantom, both finished."""
    from dss_client.phantom import make_phantom, write_phantom

    phantom = make_phantom()
    ct_path = tmp_path_factory.mktemp("phantom") / "phantom_ct.nii.gz"
    write_phantom(ct_path, phantom)
    # submitted as a workspace whose CT layer carries the service's tag, as ITK-SNAP sends it
    submitted = Workspace(Registry())
    submitted.add_layer(ct_path, "MainRole", nickname="phantom chest", tags=("CT",))
    workspace_path = submitted.save(ct_path.parent / "phantom.itksnap")
    dispatcher = compat_stack.dispatcher("compat-workspace")
    user = compat_stack.user()
    try:
        tickets = {service: user.submit_workspace(workspace_path, service)
                   for service in ("LungSegmentation", "LungNoduleDetection")}
        for ticket_id in tickets.values():
            assert wait_for_status(user, ticket_id, {"success", "failed"}) == "success", \
                [e.message for e in user.log(ticket_id)]
    finally:
        dispatcher.stop()
    return tickets


def _download_results(compat_stack, ticket_id: int, dest: Path) -> Path:
    """The result area in a new directory (the workspace moved away from where it was saved)."""
    paths = compat_stack.user().download(ticket_id, "results", dest)
    (workspace,) = [p for p in paths if p.suffix == ".itksnap"]
    assert workspace.name == f"ticket_{ticket_id:08d}_results.itksnap"
    return workspace


def _labels(ws: WorkspaceWrapper) -> dict[int, str]:
    """{value: name} from the main layer's label table, read through the official registry."""
    table = ws.registry.folder(f"{ws.get_main_layer_key()}.ProjectMetaData.IRIS.LabelTable")
    count = table.entry("NumberOfElements").get(0)
    elements = [table.folder(f"Element[{i}]") for i in range(count)]
    return {e.entry("Index").get(0): e.entry("Label").get("") for e in elements}


def test_official_reader_opens_the_lung_segmentation_result(compat_stack, finished_tickets,
                                                            tmp_path):
    path = _download_results(compat_stack, finished_tickets["LungSegmentation"], tmp_path / "lungs")
    ws = WorkspaceWrapper(str(path))
    assert ws.moved and ws.workspace_saved_dir != str(path.parent)
    assert ws.get_number_of_layers() == 2
    roles = [ws.get_layer_folder(i).entry("Role").get("") for i in range(2)]
    assert roles == ["MainRole", "SegmentationRole"]
    assert ws.layer_spec_to_key("M") == "Layers.Layer[000]"
    seg_key = ws.layer_spec_to_key("S")
    seg_path = Path(ws.get_layer_actual_path(seg_key))
    main_path = Path(ws.get_layer_actual_path(ws.get_main_layer_key()))
    assert seg_path.is_file() and seg_path.parent == path.parent
    assert main_path.is_file() and main_path.parent == path.parent
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(seg_path)))
    assert set(np.unique(labels)) == {0, 1, 2}
    assert {1: "right lung", 2: "left lung"}.items() <= _labels(ws).items()
    main_folder = ws.get_layer_folder(0)
    assert ws.get_tags(main_folder) == {"CT"} and ws.find_layers_by_tag("CT") == ["Layers.Layer[000]"]
    assert main_folder.entry("LayerMetaData.CustomNickName").get("") == "phantom chest"

    # both readers agree on every layer: role, actual path, tags, nickname
    ours = Workspace.load(path)
    for index, layer in enumerate(ours.layers):
        folder = ws.get_layer_folder(index)
        assert layer.role == folder.entry("Role").get("")
        assert layer.path == Path(ws.get_layer_actual_path(folder))
        assert set(layer.tags) == ws.get_tags(folder)
        assert layer.nickname == folder.entry("LayerMetaData.CustomNickName").get("")
    assert ours.layers[1].nickname   # the segmentation is named for the user

    # a provider chaining services re-exports it as the official upload does
    exported = tmp_path / "exported" / "ticket_00000001_results.itksnap"
    ws.export_workspace(str(exported))
    again = Workspace.load(exported)
    again.validate()
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(again.layers[1].path))), labels)


def test_official_reader_sees_the_nodule_labels_and_landmarks(compat_stack, finished_tickets,
                                                              tmp_path):
    path = _download_results(compat_stack, finished_tickets["LungNoduleDetection"],
                             tmp_path / "nodules")
    ws = WorkspaceWrapper(str(path))
    seg_path = Path(ws.get_layer_actual_path(ws.layer_spec_to_key("S")))
    assert seg_path.is_file() and seg_path.parent == path.parent
    names = _labels(ws)
    values = set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(seg_path))))) - {0}
    assert values and values <= set(names)
    assert names[1] == "nodule 1"
    annotations = ws.registry.folder("Annotations.Annotations")
    count = annotations.entry("ArraySize").get(0)
    landmarks = [annotations.folder(f"Element[{i}]") for i in range(count)]
    assert len(landmarks) == len(Workspace.load(path).landmarks) >= 1
    assert {each.entry("Type").get("") for each in landmarks} == {"LandmarkAnnotation"}
    assert all(len(each.entry("Pos").get([0.0])) == 3 for each in landmarks)


def test_our_reader_opens_what_the_official_writer_saves(compat_stack, finished_tickets, tmp_path):
    """A provider using itksnap_ws edits our result (new layer, tag, nickname) and saves it."""
    path = _download_results(compat_stack, finished_tickets["LungSegmentation"], tmp_path / "in")
    ws = WorkspaceWrapper(str(path))
    seg_path = Path(ws.get_layer_actual_path(ws.layer_spec_to_key("S")))
    right = sitk.Cast(sitk.ReadImage(str(seg_path)) == 1, sitk.sitkUInt8)
    right_path = path.parent / "right_lung.nii.gz"
    sitk.WriteImage(right, str(right_path))
    key = ws.add_layer("SegmentationRole", str(right_path))
    ws.set_layer_nickname(key, "right lung only")
    ws.add_tag(ws.registry.folder(key), "right")
    ws.add_tag(ws.registry.folder(ws.get_main_layer_key()), "CT")
    saved = path.parent / "edited.itksnap"
    ws.save_workspace(str(saved))

    moved = tmp_path / "moved"
    moved.mkdir()
    for file in path.parent.iterdir():
        (moved / file.name).write_bytes(file.read_bytes())
    ours = Workspace.load(moved / "edited.itksnap")
    ours.validate()
    assert [each.role for each in ours.layers] == ["MainRole", "SegmentationRole", "SegmentationRole"]
    assert all(each.path.parent == moved for each in ours.layers)
    assert ours.layers[2].nickname == "right lung only" and "right" in ours.layers[2].tags
    assert ours.find_layer("CT") == ours.main_layer() and "CT" in ours.main_layer().tags
    assert ours.label_table()[1][0] == "right lung"


def test_a_workspace_the_official_writer_builds_from_scratch_opens_without_version(small_ct,
                                                                                  tmp_path):
    """itksnap_ws never writes `Version`; ITK-SNAP reads such a file as the current format, and
    so do we: as saved, and as its export arrives on the dispatcher (a ticket's input)."""
    ws = WorkspaceWrapper()
    ws.add_layer("MainRole", str(small_ct))
    path = tmp_path / "scratch.itksnap"
    ws.save_workspace(str(path))
    assert "Version" not in path.read_text()
    ours = Workspace.load(path)
    ours.validate()
    assert ours.main_layer().path == Path(small_ct).resolve()

    ws.export_workspace(str(tmp_path / "export" / "ticket_00000009.itksnap"))
    received = (tmp_path / "export").rename(tmp_path / "received")   # the dispatcher's copy
    arrived = Workspace.load_received(received / "ticket_00000009.itksnap")
    arrived.validate()
    assert arrived.main_layer().path.parent == received
    assert len(arrived.check_layer_files()) == 1
