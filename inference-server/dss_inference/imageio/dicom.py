"""DICOM series uploaded as a zip: safe extraction, series choice, slice spacing checks."""
from __future__ import annotations

import logging
import stat
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import SimpleITK as sitk

from .exceptions import ImageTooLarge, InvalidImage
from .files import COPY_CHUNK, itk_reason, without_paths

log = logging.getLogger(__name__)
# DICOM slice gaps may differ from their median by this fraction (positions are rounded).
SLICE_GAP_TOLERANCE = 0.1
SOP_INSTANCE_UID, IMAGE_POSITION, IMAGE_ORIENTATION = "0008|0018", "0020|0032", "0020|0037"
# What a DICOM zip may expand to: INFERENCE_MAX_VOXELS voxels of the widest pixel data GDCM
# reads (32-bit), plus a header per file (the sample Philips slices carry 51 KB; 256 KiB
# leaves room for private tags). The upload cap allowed a 1000:1 deflate bomb.
DICOM_MAX_BYTES_PER_VOXEL = 4
DICOM_HEADER_BYTES = 256 * 1024


def extract_zip(path: Path, target: Path, max_voxels: int, max_members: int) -> list[Path]:
    """Extract a zip safely: no traversal, absolute or link names; capped count and size.

    The size cap is what max_voxels voxels of DICOM slices could need (zip_byte_limit).
    Members get flat numbered names, so nothing from the archive chooses a path on disk.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise InvalidImage("the .zip upload is not a readable zip archive") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        for member in archive.infolist():
            _check_member_name(member)
        if not members:
            raise InvalidImage("the zip archive holds no files")
        if len(members) > max_members:
            raise ImageTooLarge(f"the zip archive holds {len(members)} files, "
                                f"more than the limit of {max_members}")
        limit = zip_byte_limit(max_voxels, len(members))
        declared = sum(m.file_size for m in members)
        if declared > limit:
            raise ImageTooLarge(f"the zip archive expands to {declared} bytes, more than "
                                f"{limit}, {_zip_limit_words(max_voxels)}")
        target.mkdir(parents=True, exist_ok=True)
        budget, paths = [limit], []
        for i, member in enumerate(members):
            paths.append(_extract_member(archive, member, target / f"{i:06d}.dcm", budget))
            if budget[0] < 0:
                raise ImageTooLarge(f"the zip archive expands to more than {limit} "
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
        raise InvalidImage(f"the zip archive holds an unsafe path name: {name!r}")
    if stat.S_ISLNK(member.external_attr >> 16):
        raise InvalidImage(f"the zip archive holds a symbolic link: {name!r}")


def _extract_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, dest: Path,
                    budget: list[int]) -> Path:
    """Copy one member, counting real bytes (the sizes in a zip header can lie); stop as soon
    as the budget is spent, leaving budget[0] negative."""
    try:
        with archive.open(member) as src, open(dest, "wb") as out:
            while chunk := src.read(COPY_CHUNK):
                budget[0] -= len(chunk)
                if budget[0] < 0:
                    break
                out.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
            EOFError, OSError) as exc:
        log.info("cannot extract %r from %s: %s", member.filename, archive.filename, exc)
        raise InvalidImage(f"cannot extract {member.filename!r} from the zip: "
                           f"{without_paths(str(exc))}") from None
    return dest


def largest_series(directory: Path) -> tuple[Path, ...]:
    """The files of the DICOM series with the most files in directory, in slice order."""
    reader = sitk.ImageSeriesReader()
    try:
        series = reader.GetGDCMSeriesIDs(str(directory))
    except RuntimeError:
        series = ()
    if not series:
        raise InvalidImage("the zip archive holds no DICOM image series")
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
        raise InvalidImage(f"not a readable DICOM file: {itk_reason(exc)}") from None
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
    raise InvalidImage("the DICOM slices are not evenly spaced (gaps from "
                       f"{gaps.min():.3g} to {gaps.max():.3g} mm): "
                       f"{abs(len(positions) - expected)} missing or duplicate slices?")
