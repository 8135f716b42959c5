"""PNG preview of a label image over its CT: a few axial slices side by side, each with its
orientation letters and a caption, the findings (nodules) boxed and numbered.

The PNG is written with numpy and zlib (one RGB image, no extra dependency); text uses the 5x7
font of `bitmap_font`. Slices are shown in radiological convention (patient's right on the
left, anterior at the top).
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dss_client.imagefiles import read_image

from .bitmap_font import HEIGHT as GLYPH_HEIGHT
from .bitmap_font import WIDTH as GLYPH_WIDTH
from .bitmap_font import draw_text

WINDOW_HU = (-1000.0, 400.0)      # lung window
OVERLAY_ALPHA = 0.45
MAX_TILE = 384                    # pixels; bigger slices are shrunk
MAX_TILES = 3
GAP = 4                           # pixels between tiles
TEXT_SCALE = 2                    # font pixels are 2x2: 10x14 glyphs
TEXT_HEIGHT, LETTER_WIDTH = GLYPH_HEIGHT * TEXT_SCALE, GLYPH_WIDTH * TEXT_SCALE
CAPTION_HEIGHT = TEXT_HEIGHT + 8
LETTER_COLOUR = (255, 255, 255)
MARKER_MARGIN = 4                 # pixels between a finding's extent and its box
MARKER_MIN_HALF = 8               # pixels: a 3 mm nodule's box stays visible
MARKER_LINE = 2


@dataclass(frozen=True)
class Finding:
    """A finding to box in the preview; its number is its place in the list, from 1."""

    center_mm: tuple[float, float, float]    # world x, y, z (LPS, as ITK)
    diameter_mm: float
    colour: tuple[int, int, int]


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """Write an (h, w, 3) uint8 array as an 8-bit RGB PNG."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("expected an (h, w, 3) uint8 array")
    height, width, _ = rgb.shape
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))
    return path


def _oriented(path: Path, pixel_type) -> sitk.Image:
    return sitk.DICOMOrient(read_image(path, pixel_type), "LPS")


def representative_slices(labels: np.ndarray, count: int = MAX_TILES) -> list[int]:
    """Axial slices spread over the labelled extent (over the volume when nothing is labelled)."""
    occupied = np.flatnonzero(labels.reshape(labels.shape[0], -1).any(axis=1))
    low, high = (occupied[0], occupied[-1]) if occupied.size else (0, labels.shape[0] - 1)
    return sorted({int(round(low + (high - low) * (i + 1) / (count + 1))) for i in range(count)})


@dataclass(frozen=True)
class _Placed:
    number: int
    finding: Finding
    index: tuple[float, float, float]      # continuous x, y, z in the LPS-oriented image

    @property
    def slice(self) -> int:
        return int(np.floor(self.index[2] + 0.5))


def _place(image: sitk.Image, findings) -> list[_Placed]:
    """Each finding at its continuous voxel index; one whose centre lies outside the image
    (another service's report) has no slice to be boxed in."""
    placed = []
    for number, finding in enumerate(findings, 1):
        index = image.TransformPhysicalPointToContinuousIndex([float(v) for v in finding.center_mm])
        if all(-0.5 <= i < n - 0.5 for i, n in zip(index, image.GetSize())):
            placed.append(_Placed(number, finding, index))
    return placed


def render(ct_path: Path, label_path: Path, colours: dict[int, tuple[int, int, int]],
           findings=()) -> np.ndarray:
    """The slices through the findings' centres, best (first) first, or without findings
    slices spread over the labelled extent."""
    image = _oriented(ct_path, sitk.sitkFloat32)
    ct = sitk.GetArrayViewFromImage(image)
    labels = sitk.GetArrayFromImage(_oriented(label_path, sitk.sitkUInt16))
    if labels.shape != ct.shape:
        raise ValueError(f"label image {labels.shape} and CT {ct.shape} differ in size")
    lut = np.zeros((int(labels.max(initial=0)) + 1, 3), np.float32)
    for value, colour in colours.items():
        if value < len(lut):
            lut[value] = colour
    placed = _place(image, findings)
    through_findings = list(dict.fromkeys(p.slice for p in placed))[:MAX_TILES]
    slices = through_findings or representative_slices(labels)
    tiles = [_tile(image, _overlay(ct[z], labels[z], lut), z, [p for p in placed if p.slice == z])
             for z in slices]
    height = max(t.shape[0] for t in tiles)
    padded = [np.pad(t, ((0, height - t.shape[0]), (0, GAP), (0, 0))) for t in tiles]
    return np.concatenate(padded, axis=1)[:, :-GAP]


def _overlay(ct_slice: np.ndarray, label_slice: np.ndarray, lut: np.ndarray) -> np.ndarray:
    low, high = WINDOW_HU
    grey = np.clip((ct_slice - low) / (high - low), 0, 1)[..., None] * 255.0
    mask = (label_slice > 0)[..., None]
    return np.where(mask, (1 - OVERLAY_ALPHA) * grey + OVERLAY_ALPHA * lut[label_slice],
                    grey).astype(np.uint8)


def _tile(image: sitk.Image, rgb: np.ndarray, z: int, placed: list[_Placed]) -> np.ndarray:
    """One slice at preview size with its findings boxed, its orientation letters and, below
    it, its caption."""
    tile, scale = _resize(rgb, image.GetSpacing())
    for finding in placed:
        _mark(tile, finding, image.GetSpacing(), scale)
    _orientation_letters(tile)
    return np.concatenate([tile, _caption(image, z, tile.shape[1])])


def _resize(tile: np.ndarray, spacing) -> tuple[np.ndarray, float]:
    """Square pixels in mm, at most MAX_TILE pixels on a side (nearest neighbour); also the
    pixels per mm."""
    height_mm, width_mm = tile.shape[0] * spacing[1], tile.shape[1] * spacing[0]
    scale = MAX_TILE / max(height_mm, width_mm)
    rows = np.minimum((np.arange(max(1, round(height_mm * scale))) / scale / spacing[1]).astype(int),
                      tile.shape[0] - 1)
    cols = np.minimum((np.arange(max(1, round(width_mm * scale))) / scale / spacing[0]).astype(int),
                      tile.shape[1] - 1)
    return tile[rows][:, cols], scale


def _mark(tile: np.ndarray, placed: _Placed, spacing, scale: float) -> None:
    """A square around the finding in its colour, its number above (below at the top edge)."""
    x, y, _ = placed.index
    col, row = (x + 0.5) * spacing[0] * scale - 0.5, (y + 0.5) * spacing[1] * scale - 0.5
    half = max(placed.finding.diameter_mm / 2 * scale + MARKER_MARGIN, MARKER_MIN_HALF)
    top, bottom = int(round(row - half)), int(round(row + half))
    left, right = int(round(col - half)), int(round(col + half))
    colour = np.asarray(placed.finding.colour, np.uint8)
    for r0, r1, c0, c1 in ((top, top + MARKER_LINE, left, right + 1),
                           (bottom + 1 - MARKER_LINE, bottom + 1, left, right + 1),
                           (top, bottom + 1, left, left + MARKER_LINE),
                           (top, bottom + 1, right + 1 - MARKER_LINE, right + 1)):
        tile[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = colour
    above = top - TEXT_HEIGHT - 2 * TEXT_SCALE
    text_top = above if above >= TEXT_SCALE else bottom + 2 * TEXT_SCALE
    draw_text(tile, str(placed.number), text_top, left, placed.finding.colour, TEXT_SCALE)


def _orientation_letters(tile: np.ndarray) -> None:
    """R and L at the middle of the left and right edges, A and P at the top and bottom: the
    LPS array's first column is the patient's right, shown on the viewer's left."""
    height, width = tile.shape[:2]
    inset = 2 * TEXT_SCALE
    middle_row, middle_col = (height - TEXT_HEIGHT) // 2, (width - LETTER_WIDTH) // 2
    for letter, top, left in (("R", middle_row, inset),
                              ("L", middle_row, width - LETTER_WIDTH - inset),
                              ("A", inset, middle_col),
                              ("P", height - TEXT_HEIGHT - inset, middle_col)):
        draw_text(tile, letter, top, left, LETTER_COLOUR, TEXT_SCALE)


def _caption_text(image: sitk.Image, z: int) -> str:
    """'AXIAL 42/120, Z = -123.5 MM': the slice counted from 1 at the feet, and the world z of
    its centre."""
    size = image.GetSize()
    middle = ((size[0] - 1) / 2, (size[1] - 1) / 2, z)
    centre = image.TransformContinuousIndexToPhysicalPoint(middle)
    return f"AXIAL {z + 1}/{size[2]}, Z = {centre[2]:.1f} MM"


def _caption(image: sitk.Image, z: int, width: int) -> np.ndarray:
    """A black strip under the tile with its caption, in smaller text when a narrow tile
    would cut it off."""
    text = _caption_text(image, z)
    scale = TEXT_SCALE if (len(text) * (GLYPH_WIDTH + 1) - 1) * TEXT_SCALE + 8 <= width else 1
    strip = np.zeros((CAPTION_HEIGHT, width, 3), np.uint8)
    draw_text(strip, text, (CAPTION_HEIGHT - GLYPH_HEIGHT * scale) // 2, 4, LETTER_COLOUR, scale)
    return strip


def write_preview(path: Path, ct_path: Path, label_path: Path,
                  colours: dict[int, tuple[int, int, int]], findings=()) -> Path:
    return write_png(path, render(ct_path, label_path, colours, findings))
