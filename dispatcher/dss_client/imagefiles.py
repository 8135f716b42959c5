"""Reading a layer's image so that the file cannot choose what else is read.

MetaImage and NRRD headers may name another file as their voxels (`ElementDataFile =
/proc/self/environ`, `data file: <another ticket's CT>`), and ITK picks its reader from a
file's content. A workspace layer could thus make the dispatcher return any file it can read
as a result layer. So every image is read by the ImageIO its suffix names, single-file formats
only, and a MetaImage or NRRD header must keep its voxels in the file itself: the rules of the
inference server's `imageio/headers.py`, kept apart from it because the two are built separately.
Errors name no paths: the dispatcher shows them to the user who submitted the file.
"""
from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

IMAGE_IOS = {".nii.gz": "NiftiImageIO", ".nii": "NiftiImageIO", ".nrrd": "NrrdImageIO",
             ".mha": "MetaImageIO", ".dcm": "GDCMImageIO"}
# headers whose voxels are in another file (Analyze and two-file NIfTI: .hdr + .img)
DETACHED = (".mhd", ".nhdr", ".hdr", ".hdr.gz", ".img", ".img.gz")
SINGLE_FILE = ("save the image as a single .nii.gz, .nrrd or .mha file "
               "(e.g. with ITK-SNAP: File > Save Image)")
CONVERT_DICOM = ("convert the DICOM series to NIfTI or NRRD first "
                 "(e.g. with ITK-SNAP: File > Save Image)")
HEADER_BYTES = 1024 * 1024
# teem (ITK's NRRD reader) ends a header line at "\r\n", "\n" or a lone "\r"
_NRRD_LINE_END = re.compile(rb"\r\n|\r|\n")


class ImageFileError(ValueError):
    """The file is not read: why, without its path."""


def image_io(path: Path) -> str:
    """The ImageIO for the file's suffix; ImageFileError for a detached header or a format
    the services do not take."""
    name = path.name.lower()
    if name.endswith(".zip"):
        raise ImageFileError(f"a zip file is not an image: {CONVERT_DICOM}")
    detached = next((s for s in DETACHED if name.endswith(s)), None)
    if detached:
        raise ImageFileError(f"a {detached} header keeps its voxels in a separate file, which "
                             f"is not accepted: {SINGLE_FILE}")
    for suffix, io in IMAGE_IOS.items():
        if name.endswith(suffix):
            return io
    raise ImageFileError(f"not an image format the services take ({', '.join(IMAGE_IOS)}): "
                         f"{SINGLE_FILE}")


def read_information(path: Path):
    """A SimpleITK reader pinned to the file's format, its header read, voxels unread."""
    import SimpleITK as sitk

    io = image_io(path)
    _check_single_file(path, io)
    reader = sitk.ImageFileReader()
    reader.SetImageIO(io)
    reader.SetFileName(str(path))
    _itk(reader.ReadImageInformation, path)
    return reader


def read_image(path: Path, pixel_type=None):
    """The image (voxels too), read under the same rules."""
    reader = read_information(path)
    if pixel_type is not None:
        reader.SetOutputPixelType(pixel_type)
    return _itk(reader.Execute, path)


def _check_single_file(path: Path, io: str) -> None:
    """Checked before ITK opens the file: ITK would follow a data file line at once."""
    with open(path, "rb") as handle:
        head = handle.read(HEADER_BYTES)
    if io == "NrrdImageIO":
        _check_nrrd_header(head)
    elif io == "MetaImageIO":
        _check_metaimage_header(head)
    elif io == "NiftiImageIO":
        _check_nifti_magic(path, head)


def _check_nrrd_header(head: bytes) -> None:
    lines = _NRRD_LINE_END.split(head)
    if b"" not in lines:
        raise ImageFileError(f"its NRRD header does not end within {HEADER_BYTES} bytes")
    for line in lines[: lines.index(b"")]:
        field = b"".join(line.split(b":", 1)[0].lower().split())   # teem ignores case, spaces
        if field == b"datafile":
            raise ImageFileError(f"its NRRD header names a separate data file, which is not "
                                 f"accepted: {SINGLE_FILE}")


def _check_metaimage_header(head: bytes) -> None:
    """Every ElementDataFile line must say LOCAL. MetaIO ends a line at "\\n" only, so a "\\r"
    inside a value does not start a field; every such line counts, not the first."""
    for line in head.split(b"\n"):
        key, *value = re.split(rb"[=:]", line, maxsplit=1)
        if key.strip().lower() == b"elementdatafile" and (
                key.strip() != b"ElementDataFile" or b"".join(value).strip() != b"LOCAL"):
            raise ImageFileError(f"its MetaImage header names a separate data file, which is "
                                 f"not accepted: {SINGLE_FILE}")


def _check_nifti_magic(path: Path, head: bytes) -> None:
    """A .nii holding a two-file NIfTI or an Analyze header has its voxels in a .img beside it."""
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path) as unzipped:
                head = unzipped.read(348)
        except (OSError, EOFError, zlib.error):
            raise ImageFileError("not a readable gzip file") from None
    if head[344:348] != b"n+1\0" and head[4:8] != b"n+2\0":
        raise ImageFileError(f"not a single-file NIfTI image (no n+1 or n+2 magic): {SINGLE_FILE}")


def _itk(call, path: Path):
    """`call()`; SimpleITK's multi-line error made one ImageFileError with its reason (the
    `sitk::ERROR:` line), the file's path cut to its name."""
    try:
        return call()
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1].removeprefix("sitk::ERROR: ")
        reason = reason.replace(str(path), path.name)
        raise ImageFileError(f"cannot be read as an image ({reason})") from None
