"""Reading CT volumes (NIfTI, NRRD, MHA, DICOM series in a zip) and writing label images.

Every input is checked from its header before any pixel is read, so that a file declaring
gigavoxels is refused without allocating memory. Problems with the input raise an
`ImageInputError` naming what is wrong (exceptions.py); dss_inference.errors maps each to
the HTTP status the API answers with.

The modules: `formats` (file names and formats), `headers` (checks from headers only),
`dicom` (DICOM zips and series), `files` (filesystem helpers and error texts), `exceptions`.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .dicom import extract_zip, largest_series
from .exceptions import InvalidImage
from .files import is_gzip, itk_reason
from .formats import IMAGE_IOS, RESULT_FORMATS
from .headers import check_data_is_embedded, check_geometry, check_nifti_body, checked_size, header_reader


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


def inspect_input(path: Path, fmt: str, work_dir: Path, max_voxels: int,
                  max_members: int) -> ImageSource:
    """Check an uploaded file from its header(s) only; extract a DICOM zip into work_dir."""
    if fmt == "dicom-zip":
        dicom_dir = work_dir / "dicom"
        extract_zip(path, dicom_dir, max_voxels, max_members)
        paths = largest_series(dicom_dir)
    else:
        if fmt == "nifti" and is_gzip(path) and not path.name.endswith(".gz"):
            path = path.rename(path.with_name(path.name + ".gz"))
        paths = (path,)
        check_data_is_embedded(path, fmt)
    reader = header_reader(paths[0], IMAGE_IOS[fmt])
    size = checked_size(reader, slices=len(paths) if len(paths) > 1 else None,
                         max_voxels=max_voxels)
    if fmt == "nifti":
        check_nifti_body(paths[0])
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
        raise InvalidImage(f"cannot read the image: {itk_reason(exc)}") from None
    if tuple(image.GetSize()) != source.size:
        raise InvalidImage(f"the image holds {image.GetSize()} voxels, "
                           f"its header declared {source.size}")
    check_geometry(image.GetSpacing(), image.GetOrigin(), image.GetDirection())
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
