"""PNG preview of a label image over its CT: a few representative axial slices side by side.

The PNG is written with numpy and zlib (one RGB image, no extra dependency). Slices are shown
in radiological convention (patient's right on the left, anterior at the top).
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from dss_client.imagefiles import read_image

WINDOW_HU = (-1000.0, 400.0)      # lung window
OVERLAY_ALPHA = 0.45
MAX_TILE = 384                    # pixels; bigger slices are shrunk


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


def _as_lps_array(path: Path, pixel_type) -> tuple[np.ndarray, tuple[float, ...]]:
    image = sitk.DICOMOrient(read_image(path, pixel_type), "LPS")
    return sitk.GetArrayFromImage(image), image.GetSpacing()


def representative_slices(labels: np.ndarray, count: int = 3) -> list[int]:
    """Axial slices spread over the labelled extent (over the volume when nothing is labelled)."""
    occupied = np.flatnonzero(labels.reshape(labels.shape[0], -1).any(axis=1))
    low, high = (occupied[0], occupied[-1]) if occupied.size else (0, labels.shape[0] - 1)
    return sorted({int(round(low + (high - low) * (i + 1) / (count + 1))) for i in range(count)})


def slices_through_labels(labels: np.ndarray, values, count: int = 3) -> list[int]:
    """For each of the first `count` label values, the axial slice where it is largest."""
    chosen = []
    for value in list(values)[:count]:
        per_slice = (labels == value).reshape(labels.shape[0], -1).sum(axis=1)
        if per_slice.any():
            chosen.append(int(per_slice.argmax()))
    return sorted(set(chosen)) or representative_slices(labels)


def render(ct_path: Path, label_path: Path, colours: dict[int, tuple[int, int, int]],
           focus_labels: bool = False) -> np.ndarray:
    """Slices spread over the labelled extent, or (focus_labels) through each of the first
    labels in `colours` order."""
    ct, spacing = _as_lps_array(ct_path, sitk.sitkFloat32)
    labels, _ = _as_lps_array(label_path, sitk.sitkUInt16)
    if labels.shape != ct.shape:
        raise ValueError(f"label image {labels.shape} and CT {ct.shape} differ in size")
    lut = np.zeros((int(labels.max(initial=0)) + 1, 3), np.float32)
    for value, colour in colours.items():
        if value < len(lut):
            lut[value] = colour
    tiles = []
    slices = (slices_through_labels(labels, colours) if focus_labels
              else representative_slices(labels))
    for z in slices:
        low, high = WINDOW_HU
        grey = np.clip((ct[z] - low) / (high - low), 0, 1)[..., None] * 255.0
        label = labels[z]
        mask = (label > 0)[..., None]
        rgb = np.where(mask, (1 - OVERLAY_ALPHA) * grey + OVERLAY_ALPHA * lut[label], grey)
        tiles.append(_resize(rgb.astype(np.uint8), spacing))
    height = max(t.shape[0] for t in tiles)
    padded = [np.pad(t, ((0, height - t.shape[0]), (0, 4), (0, 0))) for t in tiles]
    return np.concatenate(padded, axis=1)[:, :-4]


def _resize(tile: np.ndarray, spacing) -> np.ndarray:
    """Square pixels in mm, at most MAX_TILE pixels on a side (nearest neighbour)."""
    height_mm, width_mm = tile.shape[0] * spacing[1], tile.shape[1] * spacing[0]
    scale = MAX_TILE / max(height_mm, width_mm)
    rows = np.minimum((np.arange(max(1, round(height_mm * scale))) / scale / spacing[1]).astype(int),
                      tile.shape[0] - 1)
    cols = np.minimum((np.arange(max(1, round(width_mm * scale))) / scale / spacing[0]).astype(int),
                      tile.shape[1] - 1)
    return tile[rows][:, cols]


def write_preview(path: Path, ct_path: Path, label_path: Path,
                  colours: dict[int, tuple[int, int, int]], focus_labels: bool = False) -> Path:
    return write_png(path, render(ct_path, label_path, colours, focus_labels))
