"""Classical lung segmentation on Hounsfield units.

Most work happens on a grid of about 3 mm (block means of the input): air threshold, air
connected to the outside removed (per slice and in 3-D), trachea and main bronchi removed,
lungs picked and split into right and left (erosion when they touch), then vessels, airways
and nodules at the pleura filled in by closing and per-slice hole filling. The result is
repeated back onto the input grid, where a thin band along the lung surface is decided again
voxel by voxel from the full-resolution HU values.
"""
from __future__ import annotations

import numpy as np
import torch

from . import ops
from .common import ModelResult, Progress, spacing_zyx, superior_is_high_index, voxel_to_world, voxel_volume_ml

WORK_SPACING_MM = 3.0
AIR_HU = -400.0           # below: air or lung parenchyma (after ~3 mm averaging)
AIRWAY_HU = -930.0        # below: the air inside trachea and bronchi
GAS_HU = -950.0
MAX_GAS_FRACTION = 0.3    # lungs (3 mm means) have <1 % voxels below GAS_HU; bowel gas 40-70 %
MIN_LUNG_ML = 15.0
MIN_PIECE_FRACTION = 0.02  # pieces smaller than this share of the largest lung are dropped
FILL_RADIUS_MM = 9.0
SPLIT_MAX_ERODE = 8


def segment_lungs(hu: torch.Tensor, volume, progress: Progress) -> ModelResult:
    """Label the lungs of `hu` (z, y, x float tensor on the model's device): 1 right, 2 left."""
    spacing = spacing_zyx(volume)
    factors = ops.block_factors(spacing, WORK_SPACING_MM, hu.shape)
    work_spacing = tuple(s * f for s, f in zip(spacing, factors))
    coarse = ops.downsample(hu, factors)
    progress("lungs: candidates", 0.1)
    candidates = _air_inside_body(coarse)
    airway = _airways(coarse, candidates, work_spacing, superior_is_high_index(volume))
    candidates &= ~ops.dilate(airway, (1, 1, 1)).cpu().numpy()
    progress("lungs: components", 0.3)
    pieces = lung_pieces(candidates, coarse.cpu().numpy(), work_spacing)
    coarse_labels = assign_sides(pieces, (coarse > AIR_HU).cpu().numpy(), volume, factors)
    progress("lungs: filling", 0.5)
    coarse_labels = torch.from_numpy(coarse_labels).to(hu.device)
    filled = _fill(coarse_labels, work_spacing, airway)
    progress("lungs: refining", 0.7)
    labels = _refine(hu, filled, factors)
    labels_np = labels.cpu().numpy().astype(np.uint8)
    return ModelResult(labels=labels_np, report=volume_report(labels_np, volume))


def volume_report(labels: np.ndarray, volume) -> dict:
    counts = np.bincount(labels.ravel(), minlength=3)
    ml = voxel_volume_ml(volume)
    return {"lungs": {"right_ml": round(float(counts[1]) * ml, 1), "left_ml": round(float(counts[2]) * ml, 1)}}


def _air_inside_body(coarse: torch.Tensor) -> np.ndarray:
    """Air not connected to the outside, within its slice or in 3-D through the x/y edges.

    A region that touches the edge but is lung-dense rather than pure air (a lung cut by a
    tight field of view) is kept.
    """
    values = coarse.cpu().numpy()
    air, gas = values < AIR_HU, values < GAS_HU
    inside = air & ~_outside(ops.label_slices(air), gas)
    labels, _ = ops.connected_components(inside)
    return inside & ~_outside(labels, gas)


def _outside(labels: np.ndarray, gas: np.ndarray) -> np.ndarray:
    touching = ops.labels_touching_border(labels)
    counts = np.bincount(labels.ravel(), minlength=len(touching))
    gas_counts = np.bincount(labels.ravel(), weights=gas.ravel(), minlength=len(touching))
    gas_like = gas_counts > MAX_GAS_FRACTION * counts
    return (touching & gas_like)[labels]


def _airways(coarse: torch.Tensor, candidates: np.ndarray, spacing, superior_high: bool) -> torch.Tensor:
    """Trachea and main bronchi: the darkest air that forms a narrow tube from the top down."""
    dark = (coarse < AIRWAY_HU).cpu().numpy() & candidates
    labels, sizes = ops.connected_components(dark)
    airway = np.zeros_like(dark)
    slice_area_mm2 = spacing[1] * spacing[2]
    for label in range(1, min(len(sizes), 6)):
        component = labels == label
        slices = np.flatnonzero(component.any(axis=(1, 2)))
        if len(slices) * spacing[0] < 30.0:
            continue
        top = slices[-len(slices) // 3:] if superior_high else slices[: len(slices) // 3]
        top_area = component[top].sum(axis=(1, 2)).mean() * slice_area_mm2
        if top_area < 900.0:  # a trachea is < ~30 mm wide; a lung apex is wider
            airway |= component
    return torch.from_numpy(airway).to(coarse.device)


def lung_pieces(candidates: np.ndarray, coarse: np.ndarray, spacing) -> list[np.ndarray]:
    """Components large enough and with lung-like density, largest first."""
    labels, sizes = ops.connected_components(candidates)
    ml_per_voxel = float(np.prod(spacing)) / 1000.0
    pieces: list[np.ndarray] = []
    for label in range(1, len(sizes)):
        if sizes[label] * ml_per_voxel < MIN_LUNG_ML:
            break
        if pieces and sizes[label] < MIN_PIECE_FRACTION * sizes[1]:
            break
        component = labels == label
        if float((coarse[component] < GAS_HU).mean()) <= MAX_GAS_FRACTION:
            pieces.append(component)
    return pieces


def assign_sides(pieces, body: np.ndarray, volume, factors) -> np.ndarray:
    """1 = patient's right (smaller physical x in LPS), 2 = left, decided in world coordinates.

    `body`: the non-air voxels of the coarse grid; their centroid is the midline when one
    lung alone is in view, and a lung split by erosion must have a part on each side of it.
    """
    labels = np.zeros(body.shape, dtype=np.uint8)
    if not pieces:
        return labels
    midline = _world_x(volume, body, factors) if body.any() else _world_x(volume, pieces[0], factors)
    if len(pieces) == 1 or pieces[1].sum() < 0.15 * pieces[0].sum():
        split = _split_touching(pieces[0])
        if split is not None and (_world_x(volume, split[0], factors) - midline) * \
                (_world_x(volume, split[1], factors) - midline) < 0:
            pieces = list(split) + pieces[1:]
    centres_x = [_world_x(volume, piece, factors) for piece in pieces]
    if len(pieces) >= 2 and (centres_x[0] - midline) * (centres_x[1] - midline) < 0:
        midline = (centres_x[0] + centres_x[1]) / 2
    for piece, x in zip(pieces, centres_x):
        labels[piece] = 1 if x < midline else 2
    return labels


def _world_x(volume, mask: np.ndarray, factors) -> float:
    """Physical x of a coarse mask's centroid."""
    centre = np.argwhere(mask).mean(axis=0)
    return float(voxel_to_world(volume, (centre + 0.5) * np.array(factors) - 0.5)[0])


def _split_touching(mask: np.ndarray):
    """Two lungs joined at the front or back: erode until two large parts appear, then grow
    them back inside the mask. None when the mask does not split (a single lung)."""
    device_mask = torch.from_numpy(mask)
    eroded = device_mask
    for _ in range(SPLIT_MAX_ERODE):
        eroded = ops.erode(eroded, (0, 1, 1))
        labels, sizes = ops.connected_components(eroded.numpy())
        if len(sizes) > 2 and sizes[2] >= 0.2 * sizes[1]:
            return _grow_back(torch.from_numpy(labels), device_mask)
    return None


def _grow_back(labels: torch.Tensor, mask: torch.Tensor):
    first, second = labels == 1, labels == 2
    for _ in range(4 * SPLIT_MAX_ERODE):
        free = mask & ~first & ~second
        grow_first = ops.dilate(first, (0, 1, 1)) & free
        grow_second = ops.dilate(second, (0, 1, 1)) & free & ~grow_first
        if not (grow_first.any() or grow_second.any()):
            break
        first, second = first | grow_first, second | grow_second
    return first.numpy(), second.numpy()


def _fill(labels: torch.Tensor, spacing, airway: torch.Tensor) -> torch.Tensor:
    """Close each lung and fill its per-slice holes, so vessels, bronchi inside the lung and
    nodules on the pleura belong to it; a voxel claimed by both lungs keeps its first owner."""
    radius = ops.radius_in_voxels(FILL_RADIUS_MM, spacing)
    filled = torch.zeros_like(labels)
    for label in (1, 2):
        lung = labels == label
        if not lung.any():
            continue
        closed = ops.close(lung, radius)
        closed = torch.from_numpy(ops.fill_holes_per_slice(closed.cpu().numpy())).to(labels.device)
        filled[closed & (filled == 0) & ((labels == 0) | lung) & ~(airway & ~lung)] = label
    return filled


def _refine(hu: torch.Tensor, coarse_labels: torch.Tensor, factors) -> torch.Tensor:
    """Back on the input grid: inside blocks keep their label, blocks at the lung surface
    keep only the voxels that are air-dense themselves. Both label maps are built on the
    coarse grid, so only two are repeated up to full size."""
    core = torch.zeros_like(coarse_labels)
    shell = torch.zeros_like(coarse_labels)
    for label in (2, 1):  # where the two shells overlap, the right lung's wins, as before
        lung = coarse_labels == label
        core[ops.erode(lung, (1, 1, 1))] = label
        shell[ops.dilate(lung, (1, 1, 1))] = label
    labels = ops.upsample_labels(core, factors, hu.shape)
    surface = (labels == 0) & (hu < AIR_HU)  # torch.where: no index list of these voxels
    return torch.where(surface, ops.upsample_labels(shell, factors, hu.shape), labels)
