"""Reading every input format, refusing bad ones from their headers, writing on the input grid."""
from __future__ import annotations

import gzip
import locale
import math
import os
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dss_inference import imageio
from dss_inference.config import Config
from dss_inference.imageio import dicom, formats, headers
from dss_inference.imageio.exceptions import ImageInputError, ImageTooLarge, InvalidImage, UnsupportedFormat
from helpers import CT_SAMPLES
from inference_testing import ORIGIN, ROTATION, SPACING, ct_like_image, geometry, write_image

LIMITS = {"max_voxels": 10_000_000, "max_members": 1000}
DICOM_SUBSET = CT_SAMPLES / "chest_ct_4dct_phase00_dicom_subset"
DICOM_J2K = CT_SAMPLES / "totalseg_abdomen_dicom_j2k"


def inspect(path: Path, work_dir: Path, **limits):
    fmt = formats.input_format(path.name)
    return imageio.inspect_input(path, fmt, work_dir, **{**LIMITS, **limits})


def zip_folder(folder: Path, target: Path, prefix: str = "series/") -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, prefix + path.name)
    return target


def expect_refusal(problem: type[ImageInputError], words: str, call, *args, **kwargs):
    with pytest.raises(ImageInputError) as caught:
        call(*args, **kwargs)
    assert type(caught.value) is problem, caught.value.reason
    assert words in caught.value.reason
    return caught.value.reason


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nii", "ct.nrrd", "ct.mha"])
def test_each_file_format_reads_with_its_exact_geometry(tmp_path, name):
    original = ct_like_image()
    path = write_image(original, tmp_path / name)
    volume = imageio.read_volume(inspect(path, tmp_path))
    assert volume.hu.dtype == np.float32
    assert volume.hu.shape == (10, 20, 24)
    np.testing.assert_array_equal(volume.hu, sitk.GetArrayFromImage(original))
    np.testing.assert_allclose(volume.spacing, SPACING, rtol=1e-6)
    np.testing.assert_allclose(volume.origin, ORIGIN, atol=1e-4)
    np.testing.assert_allclose(volume.direction, ROTATION, atol=1e-6)


@pytest.mark.parametrize("input_name", ["ct.nrrd", "ct.mha", "ct.nii.gz"])
@pytest.mark.parametrize("result_name", ["labels.nrrd", "labels.nii.gz"])
def test_labels_are_written_on_exactly_the_input_grid(tmp_path, input_name, result_name):
    path = write_image(ct_like_image(), tmp_path / input_name)
    source_image = sitk.ReadImage(str(path))
    volume = imageio.read_volume(inspect(path, tmp_path))
    labels = (volume.hu > 0).astype(np.uint8)
    written = sitk.ReadImage(str(imageio.write_labels(labels, volume, tmp_path / result_name)))
    if result_name.endswith(".nrrd"):
        assert geometry(written) == geometry(source_image)  # bit for bit
    else:  # NIfTI stores geometry as float32
        assert written.GetSize() == source_image.GetSize()
        np.testing.assert_allclose(written.GetSpacing(), source_image.GetSpacing(), rtol=1e-6)
        np.testing.assert_allclose(written.GetOrigin(), source_image.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(written.GetDirection(), source_image.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), labels)


def test_many_labels_are_written_as_uint16(tmp_path):
    volume = imageio.read_volume(inspect(write_image(ct_like_image(), tmp_path / "ct.nrrd"),
                                         tmp_path))
    labels = np.zeros(volume.shape, np.uint16)
    labels[0, 0, :] = np.arange(290, 290 + volume.shape[2])
    written = sitk.ReadImage(str(imageio.write_labels(labels, volume, tmp_path / "l.nrrd")))
    assert written.GetPixelID() == sitk.sitkUInt16
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), labels)


def test_voxel_to_world_follows_the_direction_matrix(tmp_path):
    image = ct_like_image()
    volume = imageio.read_volume(inspect(write_image(image, tmp_path / "ct.nrrd"), tmp_path))
    index = (3, 7, 5)  # x, y, z
    expected = image.TransformContinuousIndexToPhysicalPoint(index)
    np.testing.assert_allclose(volume.voxel_to_world(np.array(index[::-1])), expected)


def test_a_dicom_series_zip_is_read_in_slice_order(tmp_path):
    archive = zip_folder(DICOM_SUBSET, tmp_path / "series.zip")
    source = inspect(archive, tmp_path / "job")
    assert source.size == (512, 512, 12)
    assert all(p.parent == tmp_path / "job" / "dicom" for p in source.paths)
    volume = imageio.read_volume(source)
    assert volume.hu.shape == (12, 512, 512)
    assert volume.spacing[2] == pytest.approx(2.0, abs=1e-3)
    assert -1100 <= volume.hu.min() < -900 and volume.hu.max() > 500  # HU, rescaled
    reference = sitk.ReadImage(sorted(str(p) for p in DICOM_SUBSET.iterdir())[0])
    assert volume.origin[:2] == pytest.approx(reference.GetOrigin()[:2])



def test_repeated_copies_of_dicom_slices_are_read_once(tmp_path):
    """PACS exports may hold the same file (same SOPInstanceUID) twice; ITK alone reads
    12 + 3 files as 15 slices 1.6 mm apart instead of 12 slices 2 mm apart."""
    files = sorted(DICOM_SUBSET.iterdir())
    with zipfile.ZipFile(tmp_path / "dup.zip", "w") as archive:
        for index, path in enumerate(files + files[:3]):
            archive.write(path, f"{index:03d}.dcm")
    volume = imageio.read_volume(inspect(tmp_path / "dup.zip", tmp_path / "job"))
    assert volume.hu.shape == (12, 512, 512)
    assert volume.spacing[2] == pytest.approx(2.0, abs=1e-3)


def test_missing_dicom_slices_are_422(tmp_path):
    files = sorted(DICOM_SUBSET.iterdir())
    with zipfile.ZipFile(tmp_path / "gap.zip", "w") as archive:
        for path in files[:5] + files[7:]:
            archive.write(path, path.name)
    expect_refusal(InvalidImage, "not evenly spaced (gaps from 2 to 6 mm): 2 missing or duplicate",
                   inspect, tmp_path / "gap.zip", tmp_path / "job")


def write_dicom_slice(path: Path, z_mm: float, sop_instance_uid: str) -> None:
    image = sitk.Image(8, 8, sitk.sitkInt16)
    tags = {"0008|0018": sop_instance_uid, "0020|0032": f"0\\0\\{z_mm}",
            "0020|0037": "1\\0\\0\\0\\1\\0", "0020|000e": "1.2.3.4", "0020|000d": "1.2.3",
            "0008|0060": "CT"}
    for tag, value in tags.items():
        image.SetMetaData(tag, value)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(path))
    # GDCM's writer leaves the process in the "C" locale, and then open() without an encoding
    # reads ASCII only in every later test of the run (the server never writes DICOM).
    previous = locale.setlocale(locale.LC_ALL)
    try:
        writer.Execute(image)
    finally:
        locale.setlocale(locale.LC_ALL, previous)


def test_two_different_dicom_slices_at_one_position_are_422(tmp_path):
    """Different UIDs at one position are different images (another phase, say): which one
    is meant cannot be guessed, so neither is dropped."""
    folder = tmp_path / "series"
    folder.mkdir()
    for index, z_mm in enumerate([0, 2, 4, 4, 6]):
        write_dicom_slice(folder / f"{index}.dcm", z_mm, f"1.2.3.4.{index}")
    expect_refusal(InvalidImage, "not evenly spaced (gaps from 0 to 2 mm): 1 missing or duplicate",
                   inspect, zip_folder(folder, tmp_path / "same.zip"), tmp_path / "job")


def test_a_jpeg2000_dicom_series_is_decoded(tmp_path):
    volume = imageio.read_volume(inspect(zip_folder(DICOM_J2K, tmp_path / "j2k.zip"), tmp_path))
    assert volume.hu.shape == (20, 512, 512)
    assert volume.hu.min() >= -1100 and volume.hu.max() > 1000


def test_the_largest_of_several_series_is_chosen(tmp_path):
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        for path in sorted(DICOM_SUBSET.iterdir()):
            archive.write(path, "chest/" + path.name)
        for path in sorted(DICOM_J2K.iterdir())[:3]:
            archive.write(path, "abdomen/" + path.name)
    assert inspect(tmp_path / "two.zip", tmp_path).size == (512, 512, 12)


def test_a_zip_of_a_single_dicom_slice_is_422(tmp_path):
    with zipfile.ZipFile(tmp_path / "slice.zip", "w") as archive:
        archive.write(CT_SAMPLES / "lidc_chest_slice.dcm", "slice.dcm")
    expect_refusal(InvalidImage, "not a 3-D volume", inspect, tmp_path / "slice.zip", tmp_path)


def test_unsupported_types_are_415(tmp_path):
    expect_refusal(UnsupportedFormat, "unsupported file type", formats.input_format, "notes.txt")
    expect_refusal(UnsupportedFormat, "unsupported file type", formats.input_format, "slice.dcm")
    expect_refusal(UnsupportedFormat, "separate data file", formats.input_format, "ct.mhd")


def test_a_text_file_named_as_an_image_is_422(tmp_path):
    path = tmp_path / "ct.nii.gz"
    path.write_text("this is not an image\n" * 50)
    expect_refusal(InvalidImage, "not a readable image", inspect, path, tmp_path)


def test_a_2d_image_is_422(tmp_path):
    path = tmp_path / "slice.nrrd"
    sitk.WriteImage(sitk.Image(64, 64, sitk.sitkInt16), str(path))
    expect_refusal(InvalidImage, "3-D", inspect, path, tmp_path)


def test_a_single_slice_volume_is_422(tmp_path):
    path = tmp_path / "flat.nrrd"
    sitk.WriteImage(sitk.Image(64, 64, 1, sitk.sitkInt16), str(path))
    expect_refusal(InvalidImage, "not a 3-D volume", inspect, path, tmp_path)


def test_a_colour_image_is_422(tmp_path):
    path = tmp_path / "rgb.nrrd"
    sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkVectorUInt8, 3), str(path))
    expect_refusal(InvalidImage, "scalar", inspect, path, tmp_path)


def nifti_header_declaring(dims: tuple[int, int, int]) -> bytes:
    """A valid NIfTI-1 header for an int16 volume of dims, followed by a tiny body."""
    header = bytearray(348)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 3, *dims, 1, 1, 1, 1)
    struct.pack_into("<hh", header, 70, 4, 16)  # datatype int16, bitpix
    struct.pack_into("<8f", header, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<f", header, 108, 352)  # vox_offset
    struct.pack_into("<f", header, 112, 1)  # scl_slope
    header[344:348] = b"n+1\0"
    return bytes(header) + b"\0" * 4 + b"\0" * 64



@pytest.mark.parametrize("spacing", [(0.003, 0.003, 0.003), (0.7, 0.8, 2500.0), (1e6, 1e6, 1e6)])
def test_a_spacing_outside_the_plausible_range_is_refused_from_the_header(tmp_path, spacing):
    image = ct_like_image()
    image.SetSpacing(spacing)
    reason = expect_refusal(InvalidImage, "outside 0.01-50.0 mm per axis", inspect,
                            write_image(image, tmp_path / "ct.nrrd"), tmp_path)
    assert f"{spacing[2]:g}" in reason


def test_an_origin_kilometres_away_is_refused_from_the_header(tmp_path):
    image = ct_like_image()
    image.SetOrigin((1e300, 0.0, 0.0))
    expect_refusal(InvalidImage, "origin (1e+300, 0, 0) mm is more than", inspect,
                   write_image(image, tmp_path / "ct.nrrd"), tmp_path)


def test_a_singular_direction_matrix_is_refused_from_the_header(tmp_path):
    path = tmp_path / "singular.nrrd"
    path.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
                     b"sizes: 4 4 4\nspace directions: (3,0,0) (3,0,0) (0,0,3)\n"
                     b"space origin: (0,0,0)\nendian: little\nencoding: raw\n\n" + bytes(128))
    expect_refusal(InvalidImage, "direction matrix (1 1 0 0 0 0 0 0 1) is not a rotation", inspect,
                   path, tmp_path)
    # DICOM rounds its direction cosines to 6 decimals: still a rotation
    c, s = round(math.cos(0.3), 6), round(math.sin(0.3), 6)
    image = ct_like_image(direction=(c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    assert inspect(write_image(image, tmp_path / "ct.nrrd"), tmp_path).size == (24, 20, 10)


def header_naming_a_secret(tmp_path: Path, name: str, header: str) -> Path:
    """An image header whose {target} names a 64-byte file on the server's disk."""
    secret = tmp_path / "secret.raw"
    secret.write_bytes(bytes(range(64)))
    path = tmp_path / name
    path.write_bytes(header.format(target=secret).encode())
    return path


@pytest.mark.parametrize("name, header", [
    ("evil.mha", "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\n"
                 "ElementDataFile = {target}\n"),
    ("evil.nrrd", "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n"
                  "data file: {target}\n\n"),
    ("evil2.nrrd", "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n"
                   "datafile: {target}\n\n"),
])
def test_headers_naming_another_file_as_data_are_refused(tmp_path, name, header):
    path = header_naming_a_secret(tmp_path, name, header)
    assert sitk.ReadImage(str(path)).GetSize() == (4, 4, 4)  # what ITK alone would do
    expect_refusal(InvalidImage, "separate data file", inspect, path, tmp_path / "job")


@pytest.mark.parametrize("name, header", [
    # MetaIO ends a value at "\n" only: the "LOCAL" after the "\r" is part of the comment.
    ("cr.mha", "ObjectType = Image\nComment = x\rElementDataFile = LOCAL\nNDims = 3\n"
               "DimSize = 4 4 4\nElementType = MET_UCHAR\nElementDataFile = {target}\n"),
    ("case.mha", "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\n"
                 "elementdatafile = {target}\nElementDataFile = LOCAL\n"),
])
def test_every_metaimage_data_file_line_must_say_local(tmp_path, name, header):
    path = header_naming_a_secret(tmp_path, name, header)
    expect_refusal(InvalidImage, "separate data file", inspect, path, tmp_path / "job")


def test_a_metaimage_named_nrrd_is_refused(tmp_path):
    """The reader is pinned to the format the name says: the NRRD checks saw this header."""
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(ct_like_image(), str(tmp_path / "ct.mha"))
    os.replace(tmp_path / "ct.mha", path)
    expect_refusal(InvalidImage, "not a NRRD file", inspect, path, tmp_path / "job")


def test_a_header_declaring_gigavoxels_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.nii.gz"
    path.write_bytes(gzip.compress(nifti_header_declaring((30000, 30000, 30000))))
    reason = expect_refusal(ImageTooLarge, "voxels", inspect, path, tmp_path, max_voxels=10**9)
    assert "27000000000000" in reason


def test_the_voxel_limit_by_default_keeps_a_job_within_a_few_gigabytes(tmp_path):
    """A 778 KB gzip of 1000 x 1000 x 400 voxels took 5.8 GB under the old 1e9 default."""
    path = tmp_path / "bomb.nii.gz"
    path.write_bytes(gzip.compress(nifti_header_declaring((1000, 1000, 400))))
    limit = Config().max_voxels
    assert limit * headers.BYTES_PER_VOXEL <= 6e9
    reason = expect_refusal(ImageTooLarge, f"more than the limit of {limit} (INFERENCE_MAX_VOXELS)",
                            inspect, path, tmp_path, max_voxels=limit)
    assert "need about 6.8 GB of memory" in reason


@pytest.mark.parametrize("name", ["short.nii", "short.nii.gz"])
def test_a_nifti_body_shorter_than_its_header_declares_is_422(tmp_path, name):
    data = nifti_header_declaring((64, 64, 64))
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    expect_refusal(InvalidImage, "truncated", inspect, path, tmp_path)


def test_a_nii_gz_holding_far_more_than_its_header_declares_is_413(tmp_path):
    """A 50 KB gzip of 50 MB: the old check read the size field only and let it through."""
    path = tmp_path / "bomb.nii.gz"
    body = nifti_header_declaring((64, 64, 64)) + bytes(2 * 64**3)
    path.write_bytes(gzip.compress(body + bytes(50 * 1024**2), compresslevel=1))
    assert path.stat().st_size < 500_000
    reason = expect_refusal(ImageTooLarge, "more than 524640 bytes, what its header declares",
                            inspect, path, tmp_path)
    assert "decompression bomb" in reason
    path.write_bytes(gzip.compress(body + bytes(headers.NIFTI_TRAILING_BYTES - 1024)))
    assert inspect(path, tmp_path).size == (64, 64, 64)


def test_a_nii_gz_whose_size_field_lies_is_422(tmp_path):
    """Half the body, with the gzip trailer claiming all of it: ITK would fill in zeros."""
    data = bytearray(gzip.compress(nifti_header_declaring((64, 64, 64)) + bytes(64**3)))
    struct.pack_into("<I", data, len(data) - 4, 352 + 2 * 64**3)
    path = tmp_path / "liar.nii.gz"
    path.write_bytes(bytes(data))
    expect_refusal(InvalidImage, "gzip stream is corrupt", inspect, path, tmp_path)


def test_an_itk_failure_is_told_by_its_error_line(tmp_path):
    """ITK's message goes on with the matrices; its last line alone said '0 0 1'."""
    path = tmp_path / "singular.nrrd"
    path.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
                     b"sizes: 4 4 4\nspace directions: (3,0,0) (3,0,0) (0,0,3)\nendian: little\n"
                     b"encoding: raw\n\n" + bytes(128))
    source = imageio.ImageSource("nrrd", (path,), (4, 4, 4))  # past the header checks
    reason = expect_refusal(InvalidImage, "cannot read the image: Bad direction, determinant is 0",
                            imageio.read_volume, source)
    assert str(tmp_path) not in reason


def test_a_truncated_compressed_nrrd_fails_on_reading(tmp_path):
    path = write_image(ct_like_image(), tmp_path / "ct.nrrd")
    sitk.WriteImage(sitk.ReadImage(str(path)), str(path), useCompression=True)
    path.write_bytes(path.read_bytes()[:-40])
    source = inspect(path, tmp_path)
    expect_refusal(InvalidImage, "cannot read", imageio.read_volume, source)


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("name", ["../evil.dcm", "a/../../evil.dcm", "/etc/evil.dcm",
                                  "C:/evil.dcm", "..\\evil.dcm"])
def test_zip_traversal_and_absolute_names_are_refused(tmp_path, name):
    archive = make_zip(tmp_path / "bad.zip", {"ok.dcm": b"x", name: b"x"})
    expect_refusal(InvalidImage, "unsafe path", inspect, archive, tmp_path / "job")
    assert not (tmp_path / "evil.dcm").exists()
    assert not (tmp_path / "job" / "dicom").exists()


def test_zip_symlinks_are_refused(tmp_path):
    link = zipfile.ZipInfo("link.dcm")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as archive:
        archive.writestr(link, "/etc/passwd")
    expect_refusal(InvalidImage, "symbolic link", inspect, tmp_path / "link.zip", tmp_path / "job")


def test_an_empty_zip_is_422(tmp_path):
    expect_refusal(InvalidImage, "no files", inspect, make_zip(tmp_path / "empty.zip", {}), tmp_path)


def test_a_zip_without_dicom_is_422(tmp_path):
    archive = make_zip(tmp_path / "text.zip", {"readme.txt": b"hello"})
    expect_refusal(InvalidImage, "no DICOM", inspect, archive, tmp_path / "job")


def test_a_corrupt_zip_is_422(tmp_path):
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    expect_refusal(InvalidImage, "not a readable zip", inspect, tmp_path / "broken.zip", tmp_path)


def test_zip_size_and_member_caps_are_413(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.dcm", b"\0" * 5_000_000)
    assert bomb.stat().st_size < 50_000
    expect_refusal(ImageTooLarge, "expands to", inspect, bomb, tmp_path / "a", max_voxels=100_000)
    many = make_zip(tmp_path / "many.zip", {f"{i}.dcm": b"x" for i in range(20)})
    expect_refusal(ImageTooLarge, "holds 20 files", inspect, many, tmp_path / "b", max_members=10)


def test_zip_sizes_that_lie_are_caught_while_extracting(tmp_path):
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("zeros.dcm", b"\0" * 3_000_000)
    data = bytearray(archive.read_bytes())
    # Patch the declared uncompressed size (local header and central directory) to 10 bytes.
    for offset in _find_all(data, b"PK\x03\x04"):
        struct.pack_into("<I", data, offset + 22, 10)
    for offset in _find_all(data, b"PK\x01\x02"):
        struct.pack_into("<I", data, offset + 24, 10)
    archive.write_bytes(bytes(data))
    with pytest.raises(ImageInputError) as caught:
        inspect(archive, tmp_path / "job", max_voxels=100_000)
    assert type(caught.value) in (ImageTooLarge, InvalidImage)
    extracted = tmp_path / "job" / "dicom"
    assert sum(f.stat().st_size for f in extracted.iterdir()) <= dicom.zip_byte_limit(100_000, 1)


def test_a_small_zip_expanding_far_beyond_its_declared_images_is_413(tmp_path):
    """Two real 512 x 512 slices and 40 MB of zeros in a 0.6 MB zip: the old budget, the
    upload cap, let it expand; the images declare 0.5 Mvoxels, 2.8 MB of DICOM at most."""
    slices = sorted(DICOM_SUBSET.iterdir())[:2]
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in slices:
            archive.write(path, path.name)
        archive.writestr("padding.bin", bytes(40 * 1024**2))
    assert bomb.stat().st_size < 1_000_000
    max_voxels = 512 * 512 * 2
    limit = dicom.zip_byte_limit(max_voxels, 3)
    assert limit < 3_000_000
    reason = expect_refusal(ImageTooLarge, f"more than {limit}, the limit that {max_voxels} voxels "
                                 "(INFERENCE_MAX_VOXELS)", inspect, bomb, tmp_path / "job",
                            max_voxels=max_voxels)
    assert not (tmp_path / "job" / "dicom").exists(), reason
    without_padding = make_zip(tmp_path / "ok.zip", {p.name: p.read_bytes() for p in slices})
    assert inspect(without_padding, tmp_path / "ok", max_voxels=max_voxels).size == (512, 512, 2)


def _find_all(data: bytes, needle: bytes):
    start = 0
    while (found := data.find(needle, start)) >= 0:
        yield found
        start = found + 1


def test_a_gzipped_nifti_uploaded_as_nii_is_read(tmp_path):
    gz = write_image(ct_like_image(), tmp_path / "ct.nii.gz")
    path = tmp_path / "input.nii"
    os.replace(gz, path)
    assert inspect(path, tmp_path).size == (24, 20, 10)
