"""Checks of an input from its header(s) alone, before any pixel is read."""
from __future__ import annotations

import gzip
import math
import re
import zlib
from pathlib import Path

import nibabel
import numpy as np
import SimpleITK as sitk

from .exceptions import ImageTooLarge, InvalidImage
from .files import COPY_CHUNK, is_gzip, itk_reason, without_paths

MIN_SLICES = 2
# Plausible CT voxel spacing in mm: beyond it the header is wrong (metres or microns written
# as mm, say), and the models' mm-sized kernels would need absurd numbers of voxels.
SPACING_RANGE_MM = (0.01, 50.0)
# Peak memory of a job per input voxel, either model on the CPU, int16 input: peak RSS over
# the loaded server, 16.5 (lungs) and 16.7 (nodules) bytes at 384 x 384 x 240 voxels.
BYTES_PER_VOXEL = 17
# Farther than this from the scanner's origin (1 km) a coordinate is a broken header.
MAX_ORIGIN_MM = 1e6
# Direction matrices are rounded in files (DICOM stores 6 decimals): tolerate that, not shear.
DIRECTION_TOLERANCE = 1e-3
# A .nii.gz may hold this much beyond the header, extensions and pixels it declares.
NIFTI_TRAILING_BYTES = 1024 * 1024
_HEADER_BYTES = 1024 * 1024


def check_data_is_embedded(path: Path, fmt: str) -> None:
    """NRRD and MetaImage headers may name another file as their pixel data, any file the
    server can read: only single-file images, with the data after the header, are accepted."""
    if fmt not in ("nrrd", "mha"):
        return
    with open(path, "rb") as handle:
        head = handle.read(_HEADER_BYTES)
    if fmt == "nrrd":
        _check_nrrd_header(head)
    else:
        _check_metaimage_header(head)


# teem (ITK's NRRD reader) ends a header line at "\r\n", "\n" or a lone "\r".
_NRRD_LINE_END = re.compile(rb"\r\n|\r|\n")


def _check_nrrd_header(head: bytes) -> None:
    if not head.startswith(b"NRRD"):
        raise InvalidImage("not a NRRD file: it does not start with 'NRRD'")
    lines = _NRRD_LINE_END.split(head)
    if b"" not in lines:
        raise InvalidImage("the NRRD header does not end (with an empty line) "
                           f"within its first {_HEADER_BYTES} bytes")
    for line in lines[: lines.index(b"")]:
        field = b"".join(line.split(b":", 1)[0].lower().split())  # teem ignores case
        if field == b"datafile":
            raise InvalidImage("the NRRD header names a separate data file; "
                               "send a single-file .nrrd with the data attached")


def _check_metaimage_header(head: bytes) -> None:
    """Every ElementDataFile line must say LOCAL. MetaIO reads a value up to "\n" only, so
    lines are split there alone: a "\r" inside a value does not start a new field. The
    pixel data after the header is scanned too; a false alarm there is vanishingly rare."""
    data_files = [(key, value) for key, value in map(_metaimage_field, head.split(b"\n"))
                  if key.lower() == b"elementdatafile"]
    if not data_files:
        raise InvalidImage("not a readable MetaImage: no ElementDataFile in its header")
    for key, value in data_files:
        if key != b"ElementDataFile" or value != b"LOCAL":
            shown = value[:100].decode("latin-1")
            raise InvalidImage("the MetaImage header names a separate data file "
                               f"({shown!r}); send a single-file .mha")


def _metaimage_field(line: bytes) -> tuple[bytes, bytes]:
    """(key, value) of a "Key = Value" line; ":" separates too, to err on the safe side."""
    key, *value = re.split(rb"[=:]", line, maxsplit=1)
    return key.strip(), b"".join(value).strip()


def header_reader(path: Path, image_io: str) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetImageIO(image_io)
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InvalidImage(f"not a readable image: {itk_reason(exc)}") from None
    return reader


def checked_size(reader: sitk.ImageFileReader, slices: int | None,
                  max_voxels: int) -> tuple[int, int, int]:
    """The 3-D size the header declares, after every check that needs no pixels."""
    size = list(reader.GetSize())
    if slices is not None:  # a DICOM series: each file is one slice
        if len(size) == 3 and size[2] == 1:
            size = size[:2]
        if len(size) != 2:
            raise InvalidImage(f"DICOM series files must each hold one 2-D slice, "
                               f"got a {len(size)}-D image")
        size.append(slices)
    while len(size) > 3 and size[-1] == 1:
        size.pop()
    if len(size) != 3:
        raise InvalidImage(f"expected a 3-D CT volume, got a {len(size)}-D image "
                           f"of size {tuple(size)}")
    if reader.GetNumberOfComponents() != 1:
        raise InvalidImage(f"expected a scalar CT image, got "
                           f"{reader.GetNumberOfComponents()} components per voxel")
    if min(size) < MIN_SLICES:
        raise InvalidImage(f"the image size {tuple(size)} is not a 3-D volume "
                           f"(every axis needs at least {MIN_SLICES} voxels)")
    voxels = math.prod(size)
    if voxels > max_voxels:
        raise ImageTooLarge(f"the image declares {voxels} voxels {tuple(size)}, "
                            f"more than the limit of {max_voxels} "
                            f"(INFERENCE_MAX_VOXELS): segmenting it would need about "
                            f"{voxels * BYTES_PER_VOXEL / 1e9:.3g} GB of memory")
    # A series' slice spacing comes from the slice positions, known only once read.
    check_geometry(reader.GetSpacing()[: 2 if slices else 3], reader.GetOrigin(),
                    reader.GetDirection())
    return tuple(size)


def check_geometry(spacing, origin, direction) -> None:
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise InvalidImage(f"the image spacing {tuple(spacing)} is not positive and finite")
    low, high = SPACING_RANGE_MM
    if not all(low <= s <= high for s in spacing):
        raise InvalidImage(f"the image spacing {_mm(spacing)} mm is outside "
                           f"{low}-{high} mm per axis: is the header's unit mm?")
    if not all(math.isfinite(v) for v in origin):
        raise InvalidImage("the image origin is not finite")
    if max(abs(v) for v in origin) > MAX_ORIGIN_MM:
        raise InvalidImage(f"the image origin {_mm(origin)} mm is more than "
                           f"{MAX_ORIGIN_MM:g} mm from 0 on an axis")
    _check_direction(direction)


def _check_direction(direction) -> None:
    """Sides (left and right lung) follow from the direction matrix: it must be a rotation,
    possibly with a flip, so singular or sheared matrices are refused."""
    matrix = np.asarray(direction, dtype=np.float64)
    size = math.isqrt(matrix.size)
    matrix = matrix.reshape(size, size)[:3, :3]
    if (not np.all(np.isfinite(matrix))
            or np.abs(matrix @ matrix.T - np.eye(len(matrix))).max() > DIRECTION_TOLERANCE):
        shown = " ".join(f"{v:g}" for v in matrix.ravel())
        raise InvalidImage(f"the image direction matrix ({shown}) is not a rotation: "
                           "its axes must be orthogonal unit vectors "
                           f"(determinant {np.linalg.det(matrix):.3g})")


def _mm(values) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def check_nifti_body(path: Path) -> None:
    """ITK fills a NIfTI body shorter than its header declares with zeros; refuse it instead.

    A gzip stream is decompressed (and dropped) to count its bytes, stopping once it holds more
    than the header declares: its size field is only modulo 2**32 and can lie.
    """
    try:
        # The image's header has its offset reset to 0; the data proxy keeps the file's.
        # (nibabel.load is typed as returning the base class, which has no dataobj; a NIfTI image has)
        body = nibabel.load(str(path)).dataobj  # type: ignore[attr-defined]
    except Exception as exc:  # nibabel raises many types for broken headers
        raise InvalidImage(f"not a readable NIfTI header: {without_paths(str(exc))}") from None
    needed = int(body.offset) + np.dtype(body.dtype).itemsize * math.prod(body.shape)
    if is_gzip(path):
        available = _gzip_size(path, needed + NIFTI_TRAILING_BYTES)
        if available > needed + NIFTI_TRAILING_BYTES:
            raise ImageTooLarge(f"the NIfTI gzip stream expands to more than {needed} "
                                f"bytes, what its header declares, plus "
                                f"{NIFTI_TRAILING_BYTES}: refused as a decompression bomb")
    else:
        available = path.stat().st_size
    if available < needed:
        raise InvalidImage(f"the NIfTI file is truncated: its header declares "
                           f"{needed} bytes, it holds {available}")


def _gzip_size(path: Path, limit: int) -> int:
    """The decompressed size of a gzip file, or a number over limit once it exceeds it."""
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while total <= limit and (chunk := stream.read(COPY_CHUNK)):
                total += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidImage(f"the NIfTI gzip stream is corrupt: "
                           f"{without_paths(str(exc))}") from None
    return total
