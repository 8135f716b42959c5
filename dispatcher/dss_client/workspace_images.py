"""Checks of a workspace's layer images: read as `imagefiles` allows, each a 3-D volume whose
geometry ITK accepts. Refusals are WorkspaceErrors naming the layer, never its folder."""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from . import imagefiles
from .workspace_format import WorkspaceError

if TYPE_CHECKING:
    from .workspace import Layer


def read_header(path: Path):
    """The image's geometry without reading its voxels."""
    try:
        return header_image(imagefiles.read_information(path), path)
    except imagefiles.ImageFileError as exc:
        raise WorkspaceError(f"{path.name}: {exc}") from None


def read_layer(index: int, layer: Layer, read):
    """`read(layer.path)`; a refusal names the layer by number and file name (no folder: on
    the dispatcher that is the server's)."""
    try:
        return read(layer.path)
    except imagefiles.ImageFileError as exc:
        raise WorkspaceError(f"layer {index} ({layer.path.name}): {exc}") from None


def require_volume(header, path: Path) -> None:
    """Refuse an image that is not a 3-D volume (2-D, one slice, 4-D): the services need one."""
    size = header.GetSize()
    if len(size) == 3 and min(size) > 1:
        return
    flat = len(size) < 3 or (len(size) == 3 and min(size) == 1)
    dimensions = "2-D" if flat else f"{len(size)}-D"
    raise WorkspaceError(f"{path} is a {dimensions} image ({' x '.join(map(str, size))}): "
                         "the services need a 3-D CT volume")


def header_image(header, path: Path):
    """A one-voxel image with the header's geometry; ITK's refusal (negative spacing, a 4-D
    direction) made one WorkspaceError."""
    import SimpleITK as sitk

    image = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    try:
        image.SetOrigin(header.GetOrigin())
        image.SetSpacing(header.GetSpacing())
        image.SetDirection(header.GetDirection())
    except RuntimeError as exc:
        raise WorkspaceError(f"cannot use {path}: ITK refuses its geometry "
                             f"({_itk_reason(str(exc))})") from None
    return image


def _itk_reason(message: str) -> str:
    """The first sentence of the `ITK ERROR: Object(0x..): reason.` line of an ITK exception."""
    found = re.search(r"ITK ERROR: \S+: ([^.\n]+?)(?: and may result in undefined behavior)?[.\n]",
                      message)
    return found.group(1).strip() if found else message.strip().splitlines()[-1]
