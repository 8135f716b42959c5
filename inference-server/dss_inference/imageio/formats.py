"""Input formats from upload names, and result formats."""
from __future__ import annotations

from .exceptions import UnknownResultFormat, UnsupportedFormat

# Upload name suffix -> input format; the longest suffix wins (".nii.gz" before ".gz").
INPUT_FORMATS = {".nii.gz": "nifti", ".nii": "nifti", ".nrrd": "nrrd", ".nhdr": None,
                 ".mha": "mha", ".mhd": None, ".zip": "dicom-zip"}
# Result format name (query `format=`) -> file suffix.
RESULT_FORMATS = {"nrrd": ".nrrd", "nii.gz": ".nii.gz", "nii": ".nii", "mha": ".mha"}
# The ImageIO that reads each input format. Pinned, so that ITK never picks another reader
# from the file's content: a header in another format could name a data file never checked.
IMAGE_IOS = {"nifti": "NiftiImageIO", "nrrd": "NrrdImageIO", "mha": "MetaImageIO",
             "dicom-zip": "GDCMImageIO"}


def input_format(filename: str) -> str:
    """The input format of an upload from its file name, or UnsupportedFormat."""
    name = filename.lower()
    for suffix in sorted(INPUT_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            fmt = INPUT_FORMATS[suffix]
            if fmt is None:
                raise UnsupportedFormat(f"'{suffix}' headers need a separate data file; "
                                        "send a single-file .nrrd or .mha instead")
            return fmt
    supported = ", ".join(s for s, f in INPUT_FORMATS.items() if f)
    raise UnsupportedFormat(f"unsupported file type {filename[:100]!r}; "
                            f"send one of {supported}")


def upload_suffix(fmt: str) -> str:
    """The suffix an upload is stored under; a gzipped NIfTI gets ".gz" once its bytes say so."""
    return {"nifti": ".nii", "nrrd": ".nrrd", "mha": ".mha", "dicom-zip": ".zip"}[fmt]


def result_format(requested: str | None) -> str:
    """The result format name for a `format=` value; nrrd when none is given."""
    fmt = (requested or "nrrd").lower().lstrip(".")
    if fmt not in RESULT_FORMATS:
        raise UnknownResultFormat(f"unknown result format {requested!r}; use one of "
                                  f"{', '.join(RESULT_FORMATS)}")
    return fmt
