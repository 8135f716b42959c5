"""Reading CT volumes (NIfTI, NRRD, MHA, DICOM series in a zip) and writing label images.

Every input is checked from its header before any pixel is read, so that a file declaring
gigavoxels is refused without allocating memory. Problems with the input raise
`ImageInputError` carrying the HTTP status the API answers with.
"""
from __future__ import annotations

import gzip
import logging
import math
import re
import shutil
import stat
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import nibabel
import numpy as np
import SimpleITK as sitk

log = logging.getLogger(__name__)
# Upload name suffix -> input format; the longest suffix wins (".nii.gz" before ".gz").
INPUT_FORMATS = {".nii.gz": "nifti", ".nii": "nifti", ".nrrd": "nrrd", ".nhdr": None,
                 ".mha": "mha", ".mhd": None, ".zip": "dicom-zip"}
# Result format name (query `format=`) -> file suffix.
RESULT_FORMATS = {"nrrd": ".nrrd", "nii.gz": ".nii.gz", "nii": ".nii", "mha": ".mha"}
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
# DICOM slice gaps may differ from their median by this fraction (positions are rounded).
SLICE_GAP_TOLERANCE = 0.1
SOP_INSTANCE_UID, IMAGE_POSITION, IMAGE_ORIENTATION = "0008|0018", "0020|0032", "0020|0037"
# The ImageIO that reads each input format. Pinned, so that ITK never picks another reader
# from the file's content: a header in another format could name a data file never checked.
IMAGE_IOS = {"nifti": "NiftiImageIO", "nrrd": "NrrdImageIO", "mha": "MetaImageIO",
             "dicom-zip": "GDCMImageIO"}
# What a DICOM zip may expand to: INFERENCE_MAX_VOXELS voxels of the widest pixel data GDCM
# reads (32-bit), plus a header per file (the sample Philips slices carry 51 KB; 256 KiB
# leaves room for private tags). The upload cap allowed a 1000:1 deflate bomb.
DICOM_MAX_BYTES_PER_VOXEL = 4
DICOM_HEADER_BYTES = 256 * 1024
# A .nii.gz may hold this much beyond the header, extensions and pixels it declares.
NIFTI_TRAILING_BYTES = 1024 * 1024
_HEADER_BYTES = 1024 * 1024
_COPY_CHUNK = 1024 * 1024


class ImageInputError(Exception):
    """The input cannot be used; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass
class Volume:
    """A CT volume in Hounsfield units with its ITK geometry.

    hu: float32 array indexed (z, y, x). spacing, origin: (x, y, z) in mm, LPS world
    coordinates as ITK. direction: 9 floats, the 3x3 direction matrix row-major as ITK.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)

    def voxel_to_world(self, zyx: np.ndarray) -> np.ndarray:
        """World (x, y, z) mm of continuous voxel indices given as rows (z, y, x)."""
        ijk = np.asarray(zyx, dtype=np.float64)[..., ::-1]
        matrix = np.asarray(self.direction, dtype=np.float64).reshape(3, 3) * np.asarray(self.spacing)
        return ijk @ matrix.T + np.asarray(self.origin)


@dataclass(frozen=True)
class ImageSource:
    """A validated input: the files to read and the header facts already checked."""

    fmt: str
    paths: tuple[Path, ...]
    size: tuple[int, int, int]


def input_format(filename: str) -> str:
    """The input format of an upload from its file name, or ImageInputError 415."""
    name = filename.lower()
    for suffix in sorted(INPUT_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            fmt = INPUT_FORMATS[suffix]
            if fmt is None:
                raise ImageInputError(415, f"'{suffix}' headers need a separate data file; "
                                           "send a single-file .nrrd or .mha instead")
            return fmt
    supported = ", ".join(s for s, f in INPUT_FORMATS.items() if f)
    raise ImageInputError(415, f"unsupported file type {filename[:100]!r}; "
                               f"send one of {supported}")


def upload_suffix(fmt: str) -> str:
    """The suffix an upload is stored under; a gzipped NIfTI gets ".gz" once its bytes say so."""
    return {"nifti": ".nii", "nrrd": ".nrrd", "mha": ".mha", "dicom-zip": ".zip"}[fmt]


def inspect_input(path: Path, fmt: str, work_dir: Path, max_voxels: int,
                  max_members: int) -> ImageSource:
    """Check an uploaded file from its header(s) only; extract a DICOM zip into work_dir."""
    if fmt == "dicom-zip":
        dicom_dir = work_dir / "dicom"
        extract_zip(path, dicom_dir, max_voxels, max_members)
        paths = _largest_series(dicom_dir)
    else:
        if fmt == "nifti" and _is_gzip(path) and not path.name.endswith(".gz"):
            path = path.rename(path.with_name(path.name + ".gz"))
        paths = (path,)
        _check_data_is_embedded(path, fmt)
    reader = _header_reader(paths[0], IMAGE_IOS[fmt])
    size = _checked_size(reader, slices=len(paths) if len(paths) > 1 else None,
                         max_voxels=max_voxels)
    if fmt == "nifti":
        _check_nifti_body(paths[0])
    return ImageSource(fmt, paths, size)


def read_volume(source: ImageSource) -> Volume:
    """Read the pixels of a validated input into a float32 HU volume."""
    try:
        if len(source.paths) > 1:
            reader = sitk.ImageSeriesReader()
            reader.SetImageIO(IMAGE_IOS[source.fmt])
            reader.SetFileNames([str(p) for p in source.paths])
            image = reader.Execute()
        else:
            image = sitk.ReadImage(str(source.paths[0]), imageIO=IMAGE_IOS[source.fmt])
    except RuntimeError as exc:
        raise ImageInputError(422, f"cannot read the image: {_itk_reason(exc)}") from None
    if tuple(image.GetSize()) != source.size:
        raise ImageInputError(422, f"the image holds {image.GetSize()} voxels, "
                                   f"its header declared {source.size}")
    _check_geometry(image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    # One float32 copy straight from ITK's buffer (a view), not an int16 copy first.
    hu = sitk.GetArrayViewFromImage(image).astype(np.float32)
    return Volume(hu=hu, spacing=tuple(image.GetSpacing()), origin=tuple(image.GetOrigin()),
                  direction=tuple(image.GetDirection()))


def write_labels(labels: np.ndarray, volume: Volume, path: Path) -> Path:
    """Write a label image on exactly the volume's grid (size, spacing, origin, direction)."""
    if labels.shape != volume.shape:
        raise ValueError(f"labels {labels.shape} do not match the volume {volume.shape}")
    dtype = np.uint8 if labels.size == 0 or labels.max(initial=0) <= 255 else np.uint16
    image = sitk.GetImageFromArray(np.ascontiguousarray(labels, dtype=dtype))
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(volume.direction)
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def convert_labels(source: Path, target: Path) -> Path:
    """Rewrite a label image in the format of target's suffix, geometry unchanged.

    Written under a temporary name first, so a concurrent request never sees half a file.
    """
    suffix = next(s for s in sorted(RESULT_FORMATS.values(), key=len, reverse=True)
                  if target.name.endswith(s))
    partial = target.with_name(f".{uuid.uuid4().hex}{suffix}")
    sitk.WriteImage(sitk.ReadImage(str(source)), str(partial), useCompression=True)
    partial.replace(target)
    return target


def result_format(requested: str | None) -> str:
    """The result format name for a `format=` value; nrrd when none is given."""
    fmt = (requested or "nrrd").lower().lstrip(".")
    if fmt not in RESULT_FORMATS:
        raise ImageInputError(400, f"unknown result format {requested!r}; use one of "
                                   f"{', '.join(RESULT_FORMATS)}")
    return fmt


def extract_zip(path: Path, target: Path, max_voxels: int, max_members: int) -> list[Path]:
    """Extract a zip safely: no traversal, absolute or link names; capped count and size.

    The size cap is what max_voxels voxels of DICOM slices could need (zip_byte_limit).
    Members get flat numbered names, so nothing from the archive chooses a path on disk.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise ImageInputError(422, "the .zip upload is not a readable zip archive") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        for member in archive.infolist():
            _check_member_name(member)
        if not members:
            raise ImageInputError(422, "the zip archive holds no files")
        if len(members) > max_members:
            raise ImageInputError(413, f"the zip archive holds {len(members)} files, "
                                       f"more than the limit of {max_members}")
        limit = zip_byte_limit(max_voxels, len(members))
        declared = sum(m.file_size for m in members)
        if declared > limit:
            raise ImageInputError(413, f"the zip archive expands to {declared} bytes, more than "
                                       f"{limit}, {_zip_limit_words(max_voxels)}")
        target.mkdir(parents=True, exist_ok=True)
        budget, paths = [limit], []
        for i, member in enumerate(members):
            paths.append(_extract_member(archive, member, target / f"{i:06d}.dcm", budget))
            if budget[0] < 0:
                raise ImageInputError(413, f"the zip archive expands to more than {limit} "
                                           f"bytes, {_zip_limit_words(max_voxels)}")
        return paths


def zip_byte_limit(max_voxels: int, members: int) -> int:
    """The most bytes a zip of DICOM slices holding max_voxels voxels could plausibly need."""
    return max_voxels * DICOM_MAX_BYTES_PER_VOXEL + members * DICOM_HEADER_BYTES


def _zip_limit_words(max_voxels: int) -> str:
    return (f"the limit that {max_voxels} voxels (INFERENCE_MAX_VOXELS) of DICOM slices could "
            f"need ({DICOM_MAX_BYTES_PER_VOXEL} bytes a voxel, {DICOM_HEADER_BYTES} bytes of "
            "header a file)")


def _check_member_name(member: zipfile.ZipInfo) -> None:
    name = member.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise ImageInputError(422, f"the zip archive holds an unsafe path name: {name!r}")
    if stat.S_ISLNK(member.external_attr >> 16):
        raise ImageInputError(422, f"the zip archive holds a symbolic link: {name!r}")


def _extract_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, dest: Path,
                    budget: list[int]) -> Path:
    """Copy one member, counting real bytes (the sizes in a zip header can lie); stop as soon
    as the budget is spent, leaving budget[0] negative."""
    try:
        with archive.open(member) as src, open(dest, "wb") as out:
            while chunk := src.read(_COPY_CHUNK):
                budget[0] -= len(chunk)
                if budget[0] < 0:
                    break
                out.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
            EOFError, OSError) as exc:
        log.info("cannot extract %r from %s: %s", member.filename, archive.filename, exc)
        raise ImageInputError(422, f"cannot extract {member.filename!r} from the zip: "
                                   f"{without_paths(str(exc))}") from None
    return dest


def _largest_series(directory: Path) -> tuple[Path, ...]:
    """The files of the DICOM series with the most files in directory, in slice order."""
    reader = sitk.ImageSeriesReader()
    try:
        series = reader.GetGDCMSeriesIDs(str(directory))
    except RuntimeError:
        series = ()
    if not series:
        raise ImageInputError(422, "the zip archive holds no DICOM image series")
    files = max((reader.GetGDCMSeriesFileNames(str(directory), sid) for sid in series), key=len)
    return _evenly_spaced_slices([Path(f) for f in files])


def _evenly_spaced_slices(files: list[Path]) -> tuple[Path, ...]:
    """The series' files without repeated copies of a slice, checked to be evenly spaced.

    A copy is a file with the SOPInstanceUID of an earlier one: by DICOM's definition the same
    image, as PACS exports sometimes repeat. Two files at the same position with different
    UIDs are different images (another phase or reconstruction); which one is meant is not
    ours to guess, so they are refused by the spacing check instead. ITK would read either
    case, and missing slices, as a volume with an averaged slice spacing: wrong geometry.
    """
    kept, uids, positions = [], set(), []
    for path in files:
        tags = _dicom_tags(path, (SOP_INSTANCE_UID, IMAGE_POSITION, IMAGE_ORIENTATION))
        uid = tags[SOP_INSTANCE_UID]
        if uid and uid in uids:
            continue
        uids.add(uid)
        kept.append(path)
        positions.append(_position_along_normal(tags[IMAGE_POSITION], tags[IMAGE_ORIENTATION]))
    if None not in positions:
        _check_even_gaps([p for p in positions if p is not None])
    return tuple(kept)


def _dicom_tags(path: Path, keys: tuple[str, ...]) -> dict[str, str]:
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ImageInputError(422, f"not a readable DICOM file: {_itk_reason(exc)}") from None
    return {key: reader.GetMetaData(key).strip(" \0") if reader.HasMetaDataKey(key) else ""
            for key in keys}


def _position_along_normal(position: str, orientation: str) -> float | None:
    """The slice's position along the normal of its plane, in mm; None when not given."""
    try:
        point = np.array([float(v) for v in position.split("\\")])
        cosines = np.array([float(v) for v in orientation.split("\\")])
        normal = np.cross(cosines[:3], cosines[3:])
        return float(point @ normal) if point.shape == (3,) else None
    except ValueError:
        return None


def _check_even_gaps(positions: list[float]) -> None:
    gaps = np.abs(np.diff(np.sort(positions)))
    if len(gaps) == 0:
        return
    median = float(np.median(gaps))
    if median > 0 and np.abs(gaps - median).max() <= SLICE_GAP_TOLERANCE * median:
        return
    expected = round((max(positions) - min(positions)) / median) + 1 if median > 0 else 1
    raise ImageInputError(422, "the DICOM slices are not evenly spaced (gaps from "
                               f"{gaps.min():.3g} to {gaps.max():.3g} mm): "
                               f"{abs(len(positions) - expected)} missing or duplicate slices?")


def _check_data_is_embedded(path: Path, fmt: str) -> None:
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
        raise ImageInputError(422, "not a NRRD file: it does not start with 'NRRD'")
    lines = _NRRD_LINE_END.split(head)
    if b"" not in lines:
        raise ImageInputError(422, "the NRRD header does not end (with an empty line) "
                                   f"within its first {_HEADER_BYTES} bytes")
    for line in lines[: lines.index(b"")]:
        field = b"".join(line.split(b":", 1)[0].lower().split())  # teem ignores case
        if field == b"datafile":
            raise ImageInputError(422, "the NRRD header names a separate data file; "
                                       "send a single-file .nrrd with the data attached")


def _check_metaimage_header(head: bytes) -> None:
    """Every ElementDataFile line must say LOCAL. MetaIO reads a value up to "\n" only, so
    lines are split there alone: a "\r" inside a value does not start a new field. The
    pixel data after the header is scanned too; a false alarm there is vanishingly rare."""
    data_files = [(key, value) for key, value in map(_metaimage_field, head.split(b"\n"))
                  if key.lower() == b"elementdatafile"]
    if not data_files:
        raise ImageInputError(422, "not a readable MetaImage: no ElementDataFile in its header")
    for key, value in data_files:
        if key != b"ElementDataFile" or value != b"LOCAL":
            shown = value[:100].decode("latin-1")
            raise ImageInputError(422, "the MetaImage header names a separate data file "
                                       f"({shown!r}); send a single-file .mha")


def _metaimage_field(line: bytes) -> tuple[bytes, bytes]:
    """(key, value) of a "Key = Value" line; ":" separates too, to err on the safe side."""
    key, *value = re.split(rb"[=:]", line, maxsplit=1)
    return key.strip(), b"".join(value).strip()


def _header_reader(path: Path, image_io: str) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetImageIO(image_io)
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ImageInputError(422, f"not a readable image: {_itk_reason(exc)}") from None
    return reader


def _checked_size(reader: sitk.ImageFileReader, slices: int | None,
                  max_voxels: int) -> tuple[int, int, int]:
    """The 3-D size the header declares, after every check that needs no pixels."""
    size = list(reader.GetSize())
    if slices is not None:  # a DICOM series: each file is one slice
        if len(size) == 3 and size[2] == 1:
            size = size[:2]
        if len(size) != 2:
            raise ImageInputError(422, f"DICOM series files must each hold one 2-D slice, "
                                       f"got a {len(size)}-D image")
        size.append(slices)
    while len(size) > 3 and size[-1] == 1:
        size.pop()
    if len(size) != 3:
        raise ImageInputError(422, f"expected a 3-D CT volume, got a {len(size)}-D image "
                                   f"of size {tuple(size)}")
    if reader.GetNumberOfComponents() != 1:
        raise ImageInputError(422, f"expected a scalar CT image, got "
                                   f"{reader.GetNumberOfComponents()} components per voxel")
    if min(size) < MIN_SLICES:
        raise ImageInputError(422, f"the image size {tuple(size)} is not a 3-D volume "
                                   f"(every axis needs at least {MIN_SLICES} voxels)")
    voxels = math.prod(size)
    if voxels > max_voxels:
        raise ImageInputError(413, f"the image declares {voxels} voxels {tuple(size)}, "
                                   f"more than the limit of {max_voxels} "
                                   f"(INFERENCE_MAX_VOXELS): segmenting it would need about "
                                   f"{voxels * BYTES_PER_VOXEL / 1e9:.3g} GB of memory")
    # A series' slice spacing comes from the slice positions, known only once read.
    _check_geometry(reader.GetSpacing()[: 2 if slices else 3], reader.GetOrigin(),
                    reader.GetDirection())
    return tuple(size)


def _check_geometry(spacing, origin, direction) -> None:
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ImageInputError(422, f"the image spacing {tuple(spacing)} is not positive and finite")
    low, high = SPACING_RANGE_MM
    if not all(low <= s <= high for s in spacing):
        raise ImageInputError(422, f"the image spacing {_mm(spacing)} mm is outside "
                                   f"{low}-{high} mm per axis: is the header's unit mm?")
    if not all(math.isfinite(v) for v in origin):
        raise ImageInputError(422, "the image origin is not finite")
    if max(abs(v) for v in origin) > MAX_ORIGIN_MM:
        raise ImageInputError(422, f"the image origin {_mm(origin)} mm is more than "
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
        raise ImageInputError(422, f"the image direction matrix ({shown}) is not a rotation: "
                                   "its axes must be orthogonal unit vectors "
                                   f"(determinant {np.linalg.det(matrix):.3g})")


def _mm(values) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def _check_nifti_body(path: Path) -> None:
    """ITK fills a NIfTI body shorter than its header declares with zeros; refuse it instead.

    A gzip stream is decompressed (and dropped) to count its bytes, stopping once it holds more
    than the header declares: its size field is only modulo 2**32 and can lie.
    """
    try:
        # The image's header has its offset reset to 0; the data proxy keeps the file's.
        # (nibabel.load is typed as returning the base class, which has no dataobj; a NIfTI image has)
        body = nibabel.load(str(path)).dataobj  # type: ignore[attr-defined]
    except Exception as exc:  # nibabel raises many types for broken headers
        raise ImageInputError(422, f"not a readable NIfTI header: {without_paths(str(exc))}") from None
    needed = int(body.offset) + np.dtype(body.dtype).itemsize * math.prod(body.shape)
    if _is_gzip(path):
        available = _gzip_size(path, needed + NIFTI_TRAILING_BYTES)
        if available > needed + NIFTI_TRAILING_BYTES:
            raise ImageInputError(413, f"the NIfTI gzip stream expands to more than {needed} "
                                       f"bytes, what its header declares, plus "
                                       f"{NIFTI_TRAILING_BYTES}: refused as a decompression bomb")
    else:
        available = path.stat().st_size
    if available < needed:
        raise ImageInputError(422, f"the NIfTI file is truncated: its header declares "
                                   f"{needed} bytes, it holds {available}")


def _gzip_size(path: Path, limit: int) -> int:
    """The decompressed size of a gzip file, or a number over limit once it exceeds it."""
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while total <= limit and (chunk := stream.read(_COPY_CHUNK)):
                total += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise ImageInputError(422, f"the NIfTI gzip stream is corrupt: "
                                   f"{without_paths(str(exc))}") from None
    return total


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _itk_reason(exc: RuntimeError) -> str:
    """What an ITK exception says is wrong, for the client: the "ERROR:" line unless it only
    announces details (ends with ":"), then the last line; without the server's file paths,
    which the log keeps."""
    log.info("ITK refused an input: %s", exc)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line.split("ERROR:", 1)[1].strip() for line in lines if "ERROR:" in line]
    if errors and not errors[0].endswith(":"):
        reason = errors[0]
    else:
        reason = lines[-1] if lines else "unknown error"
    # "NrrdImageIO(0x55e3...): " and "[nrrd] _nrrdHeaderCheck: " say where, not what
    reason = re.sub(r"^(\w+\(0x[0-9a-fA-F]+\):\s*|\[\w+\]\s*\w+:\s*)+", "", reason)
    return without_paths(reason)[:300]


# A quoted string holding a "/", or an unquoted absolute path.
_PATH = re.compile(r"\"[^\"]*/[^\"]*\"|'[^']*/[^']*'|(?<![\w.])/[^\s\"':,]+")


def without_paths(text: str) -> str:
    """text with file paths replaced: error answers must not show the server's folders."""
    return _PATH.sub("the file", text)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
