"""dss_client.workspace against workspace files shaped exactly as ITK-SNAP saves them."""
from __future__ import annotations

import hashlib
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dss_client.workspace import Workspace
from dss_client.workspace_format import WorkspaceError

# What ITK-SNAP 4 writes for a CT with a second (tagged) image and no segmentation, trimmed of
# display settings but otherwise byte-for-byte its layout: header comment, DOCTYPE, entries
# before folders, keys sorted, two-space indent, `<folder key=".." >`.
ITKSNAP_WORKSPACE = """<?xml version="1.0" encoding="UTF-8" ?>
<!--ITK-SNAP (itksnap.org) Project File

This file can be moved/copied along with the images that it references
as long as the relative location of the images to the project file is 
the same. Do not modify the SaveLocation entry, or this will not work.
-->
<!DOCTYPE registry [
<!ELEMENT registry (entry*,folder*)>
<!ELEMENT folder (entry*,folder*)>
<!ELEMENT entry EMPTY>
<!ATTLIST folder key CDATA #REQUIRED>
<!ATTLIST entry key CDATA #REQUIRED>
<!ATTLIST entry value CDATA #REQUIRED>
]>
<registry>
  <entry key="SaveLocation" value="{save_location}" />
  <entry key="Version" value="20230925" />
  <folder key="Annotations" >
    <entry key="Format" value="ITK-SNAP Annotation File" />
    <entry key="FormatDate" value="20150624" />
  </folder>
  <folder key="Layers" >
    <folder key="Layer[000]" >
      <entry key="AbsolutePath" value="{save_location}/ct.nii.gz" />
      <entry key="Role" value="MainRole" />
      <entry key="Tags" value="" />
      <folder key="IOHints" >
        <entry key="Format" value="NiFTI" />
      </folder>
      <folder key="LayerMetaData" >
        <entry key="Alpha" value="255" />
        <entry key="CustomNickName" value="Chest &amp; &quot;lungs&quot;" />
        <entry key="Sticky" value="0" />
        <entry key="Tags" value="" />
      </folder>
      <folder key="ProjectMetaData" >
        <folder key="IRIS" >
          <folder key="LabelTable" >
            <entry key="NumberOfElements" value="1" />
            <folder key="Element[0]" >
              <entry key="Alpha" value="255" />
              <entry key="Color" value="255 0 0" />
              <entry key="Flags" value="1 1" />
              <entry key="Index" value="7" />
              <entry key="Label" value="Label 7" />
            </folder>
          </folder>
        </folder>
      </folder>
    </folder>
    <folder key="Layer[001]" >
      <entry key="AbsolutePath" value="{save_location}/pet.nii.gz" />
      <entry key="Role" value="OverlayRole" />
      <entry key="Tags" value="PET,Extra" />
      <folder key="LayerMetaData" >
        <entry key="Alpha" value="255" />
        <entry key="CustomNickName" value="" />
        <entry key="Sticky" value="0" />
        <entry key="Tags" value="PET,Extra" />
      </folder>
    </folder>
  </folder>
</registry>
"""


def _image(path: Path, value: int = 0) -> Path:
    array = np.full((6, 8, 10), value, dtype=np.int16)
    array[2:4, 3:5, 4:6] = value + 100
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 3.0))
    image.SetOrigin((-10.0, -20.0, 30.0))
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture
def saved_workspace(tmp_path):
    """A workspace as ITK-SNAP saved it in `orig/`, with its two images."""
    orig = tmp_path / "orig"
    orig.mkdir()
    _image(orig / "ct.nii.gz", -1000)
    _image(orig / "pet.nii.gz", 5)
    path = orig / "study.itksnap"
    path.write_text(ITKSNAP_WORKSPACE.format(save_location=orig))
    return path


def test_reads_layers_roles_tags_and_escaped_values(saved_workspace):
    ws = Workspace.load(saved_workspace)
    assert [(each.key, each.role, each.path.name) for each in ws.layers] == [
        ("Layers.Layer[000]", "MainRole", "ct.nii.gz"),
        ("Layers.Layer[001]", "OverlayRole", "pet.nii.gz")]
    assert ws.layers[0].nickname == 'Chest & "lungs"'
    assert ws.layers[1].tags == ("PET", "Extra")
    assert ws.label_table() == {7: ("Label 7", (255, 0, 0))}


def test_find_layer_by_tag_falls_back_to_main(saved_workspace):
    ws = Workspace.load(saved_workspace)
    assert ws.find_layer("PET").key == "Layers.Layer[001]"
    assert ws.find_layer("Extra").key == "Layers.Layer[001]"
    assert ws.find_layer("CT").key == "Layers.Layer[000]"
    assert ws.find_layer(None).key == "Layers.Layer[000]"


def test_moved_workspace_finds_layers_relative_to_new_place(saved_workspace, tmp_path):
    moved = shutil.copytree(saved_workspace.parent, tmp_path / "elsewhere" / "copy")
    ws = Workspace.load(moved / "study.itksnap")
    assert [each.path for each in ws.layers] == [moved / "ct.nii.gz", moved / "pet.nii.gz"]
    # a layer missing next to the moved file keeps its stored absolute path
    (moved / "pet.nii.gz").unlink()
    assert Workspace.load(moved / "study.itksnap").layers[1].path == saved_workspace.parent / "pet.nii.gz"


def test_segmentation_goes_to_next_free_key_and_never_overwrites(saved_workspace, tmp_path):
    ws = Workspace.load(saved_workspace)
    seg = _image(tmp_path / "seg.nii.gz", 0)
    key = ws.add_segmentation(seg, "Lungs", {1: ("right lung", (255, 0, 0)),
                                             2: ("left lung", (0, 255, 0))})
    assert key == "Layers.Layer[002]"
    assert ws.add_segmentation(seg, "again") == "Layers.Layer[003]"
    assert [each.role for each in ws.layers] == ["MainRole", "OverlayRole", "SegmentationRole",
                                           "SegmentationRole"]
    assert ws.layers[1].path.name == "pet.nii.gz"
    assert ws.label_table() == {1: ("right lung", (255, 0, 0)), 2: ("left lung", (0, 255, 0)),
                                7: ("Label 7", (255, 0, 0))}


def test_saved_file_is_shaped_like_itksnaps(saved_workspace, tmp_path):
    """Reading ITK-SNAP's file and saving it elsewhere gives ITK-SNAP's bytes; only
    SaveLocation changes (the layers stay where they are)."""
    orig = saved_workspace.parent
    Workspace.load(saved_workspace).save(tmp_path / "out" / "study.itksnap")
    expected = ITKSNAP_WORKSPACE.format(save_location=orig).replace(
        f'"SaveLocation" value="{orig}"', f'"SaveLocation" value="{tmp_path / "out"}"')
    assert (tmp_path / "out" / "study.itksnap").read_text() == expected


def test_landmarks_round_trip_in_physical_space(saved_workspace):
    ws = Workspace.load(saved_workspace)
    ws.add_landmarks([("nodule 1", (-6.0, -14.0, 39.0)), ("nodule 2", (-10.0, -20.0, 30.0))])
    saved = Workspace.load(ws.save(saved_workspace))
    marks = saved.landmarks
    assert [m.text for m in marks] == ["nodule 1", "nodule 2"]
    assert marks[0].position == (2.5, 3.5, 3.5)       # voxel (2, 3, 3): its centre
    assert saved.landmark_point_mm(marks[0]) == pytest.approx((-6.0, -14.0, 39.0))
    element = saved.registry.folder("Annotations.Annotations.Element[1]")
    assert element.entries["Type"] == "LandmarkAnnotation"
    assert saved.registry.get("Annotations.Annotations.ArraySize") == "2"


def test_export_like_itksnap_wt(saved_workspace, tmp_path):
    ws = Workspace.load(saved_workspace)
    ws.add_segmentation(_image(tmp_path / "seg.nii.gz", 0), "seg", {1: ("x", (1, 2, 3))})
    files = ws.export(tmp_path / "export", "ticket_00000017_results")
    assert files[0].name == "ticket_00000017_results.itksnap"
    voxels = sitk.GetArrayFromImage(sitk.ReadImage(str(saved_workspace.parent / "ct.nii.gz")))
    assert files[1].name == f"layer_000_{hashlib.md5(voxels.tobytes()).hexdigest()}.nii.gz"
    assert [f.name[:10] for f in files[1:]] == ["layer_000_", "layer_001_", "layer_002_"]
    exported = Workspace.load(files[0])
    exported.validate()
    assert [each.path for each in exported.layers] == files[1:]
    assert exported.registry.get("SaveLocation") == str(tmp_path / "export")
    assert not exported.registry.has_folder("Layers.Layer[000].IOHints")
    assert exported.label_table()[1] == ("x", (1, 2, 3))


def test_for_image_makes_an_openable_workspace(tmp_path):
    ct = _image(tmp_path / "ct.nii.gz")
    ws = Workspace.for_image(ct)
    saved = Workspace.load(ws.save(tmp_path / "new.itksnap"))
    saved.validate()
    assert saved.main_layer().path == ct
    ET.fromstring((tmp_path / "new.itksnap").read_bytes())  # well-formed XML


@pytest.mark.parametrize("text, message", [
    ("<registry><entry key='Version' value='1'/></registry>", "not an ITK-SNAP workspace"),
    ("<registry><folder><entry key='a' value='b'/></folder></registry>", "key"),
    ("<registry><bogus key='a'/></registry>", "unknown XML element"),
    ("<registry>", "not valid XML"),
    ('<!DOCTYPE registry [<!ENTITY a "aaaa">]><registry><entry key="SaveLocation" value="&a;"/>'
     "</registry>", "entity"),
])
def test_bad_files_raise_clear_errors(tmp_path, text, message):
    path = tmp_path / "bad.itksnap"
    path.write_text(text)
    with pytest.raises(WorkspaceError, match=message):
        Workspace.load(path)


def test_validate_reports_missing_layer_file(saved_workspace):
    (saved_workspace.parent / "pet.nii.gz").unlink()
    with pytest.raises(WorkspaceError, match="Layer 1"):
        Workspace.load(saved_workspace).validate()


def test_re_export_copies_already_exported_layers_unchanged(saved_workspace, tmp_path):
    first = Workspace.load(saved_workspace).export(tmp_path / "a", "ticket_00000001")
    second = Workspace.load(first[0]).export(tmp_path / "b", "ticket_00000001_results")
    assert [p.name for p in second[1:]] == [p.name for p in first[1:]]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first[1:], second[1:]))
    # a file whose name claims another checksum is written afresh, under the right name
    wrong = tmp_path / "a" / ("layer_000_" + "0" * 32 + ".nii.gz")
    first[1].rename(wrong)
    ws = Workspace.load(first[0])
    ws.registry.set("Layers.Layer[000].AbsolutePath", str(wrong))
    third = ws.export(tmp_path / "c", "x")
    assert third[1].name == first[1].name


def _pair_nifti(path: Path) -> bytes:
    """A .nii whose header says its voxels are in a .img beside it (magic ni1)."""
    sitk.WriteImage(sitk.Image([8, 8, 4], sitk.sitkInt16), str(path))
    data = bytearray(path.read_bytes())
    data[344:348] = b"ni1\0"
    return bytes(data)


def _mha_named_nii(path: Path) -> bytes:
    """A MetaImage under a NIfTI name: ITK would pick the MetaImage reader from the content."""
    sitk.WriteImage(sitk.Image([8, 8, 4], sitk.sitkInt16), str(path.with_suffix(".mha")))
    return path.with_suffix(".mha").read_bytes()


@pytest.mark.parametrize("name, content, reason", [
    ("outside.nrrd", lambda _: b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 8 8 4\nencoding: "
                               b"raw\nData File: /proc/self/environ\n\n",
     "its NRRD header names a separate"),
    ("cr.nrrd", lambda _: b"NRRD0004\rtype: uchar\rdimension: 3\rsizes: 8 8 4\rencoding: raw\r"
                          b"datafile: /proc/self/environ\r\r", "its NRRD header names a separate"),
    ("pair.nii", _pair_nifti, "not a single-file NIfTI image"),
    ("meta.nii.gz", _mha_named_nii, "not a single-file NIfTI image"),
    ("analyze.hdr", lambda _: b"\0" * 348, "a .hdr header keeps its voxels in a separate file"),
])
def test_layers_are_read_only_as_single_files_of_their_suffix(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content(path))
    with pytest.raises(WorkspaceError, match=f"^layer 0 \\({name}\\): {reason}"):
        Workspace.for_image(path).check_images()
    with pytest.raises(WorkspaceError, match=f"^layer 0 \\({name}\\): {reason}"):
        Workspace.for_image(path).export(tmp_path / "export", "x")
