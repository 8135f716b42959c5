"""Synthetic chest CT with known truth, for demos, end-to-end tests and accuracy tests.

The phantom is built in millimetres around the volume centre, in LPS world coordinates with
an identity direction (x grows towards the patient's left, y towards the back, z towards the
head), so the patient's right lung lies at smaller x. It holds a body with fat, ribs and a
spine, two lungs at -850 HU, a trachea and main bronchi, a branching vessel tree, nodules
(spherical and lobulated, some touching the pleura) and noise.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

AIR_HU, LUNG_HU, FAT_HU, TISSUE_HU, BONE_HU, NODULE_HU = -1000.0, -850.0, -100.0, 40.0, 650.0, 30.0
NOISE_HU = 18.0
DEFAULT_NODULE_DIAMETERS = (4.0, 6.0, 9.0, 13.0, 18.0, 25.0)


@dataclass
class PhantomNodule:
    center_mm: tuple[float, ...]  # x, y, z
    diameter_mm: float
    label: int
    irregular: bool = False
    juxta_pleural: bool = False


@dataclass
class Phantom:
    """hu: int16 (z, y, x); lungs: uint8 truth (1 right, 2 left); nodule_labels: uint16 truth."""

    hu: np.ndarray
    spacing: tuple[float, ...]  # x, y, z
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    lungs: np.ndarray
    nodules: list[PhantomNodule] = field(default_factory=list)
    nodule_labels: np.ndarray | None = None


class _Grid:
    """Voxel centre coordinates in mm, each axis as a broadcastable 1-D array."""

    def __init__(self, shape, spacing, origin):
        nz, ny, nx = shape
        sx, sy, sz = spacing
        self.shape, self.spacing, self.origin = shape, spacing, origin
        self.x = (origin[0] + sx * np.arange(nx, dtype=np.float32))[None, None, :]
        self.y = (origin[1] + sy * np.arange(ny, dtype=np.float32))[None, :, None]
        self.z = (origin[2] + sz * np.arange(nz, dtype=np.float32))[:, None, None]

    def box(self, low_mm, high_mm):
        """Index slices (z, y, x) of the voxels between two world corners, and their coordinates."""
        slices = []
        for axis, (lo, hi) in enumerate(zip(low_mm, high_mm)):
            step, start, size = self.spacing[axis], self.origin[axis], self.shape[2 - axis]
            first = int(np.clip(np.floor((lo - start) / step), 0, size))
            last = int(np.clip(np.ceil((hi - start) / step) + 1, 0, size))
            slices.append(slice(first, last))
        zs, ys, xs = slices[::-1]
        return (zs, ys, xs), (self.z[zs], self.y[:, ys], self.x[..., xs])


def make_phantom(shape=(64, 96, 96), spacing=(4.0, 4.0, 4.0), seed: int = 0,
                 nodules=DEFAULT_NODULE_DIAMETERS, juxta_pleural: int = 2,
                 irregular: int = 1, noise_hu: float = NOISE_HU, touching_lungs: bool = False) -> Phantom:
    """A synthetic chest CT of `shape` (z, y, x) voxels of `spacing` (x, y, z) mm.

    nodules: diameters in mm (3-30), planted at random places in the lungs; the first
    `juxta_pleural` of them touch the chest wall, the next `irregular` are lobulated.
    touching_lungs: the two lungs meet at the midline (no mediastinum between them there),
    as in thin patients; the truth splits them at x = 0.
    """
    rng = np.random.default_rng(seed)
    extent = np.array(spacing, dtype=np.float64) * np.array(shape[::-1])
    origin = tuple(float(v) for v in -extent / 2 + np.array(spacing) / 2)
    grid = _Grid(tuple(shape), tuple(float(s) for s in spacing), origin)
    body_a, body_b = 0.42 * extent[0], 0.32 * extent[1]
    z_top = extent[2] / 2

    hu = np.full(shape, AIR_HU, dtype=np.float32)
    body = (grid.x / body_a) ** 2 + (grid.y / body_b) ** 2 <= 1.0
    body = np.broadcast_to(body, shape)
    hu[body] = FAT_HU
    inner = (grid.x / (body_a - 12)) ** 2 + (grid.y / (body_b - 12)) ** 2 <= 1.0
    hu[np.broadcast_to(inner, shape)] = TISSUE_HU
    _draw_ribs_and_spine(hu, grid, body_a, body_b, extent)

    lungs = _lung_regions(grid, body_a, body_b, extent, touching_lungs)
    hu[lungs > 0] = LUNG_HU
    _draw_vessels(hu, lungs, grid, rng, body_a, body_b, z_top)
    _draw_airways(hu, grid, body_a, body_b, z_top)

    planted, nodule_labels = _plant_nodules(hu, lungs, grid, rng, nodules, juxta_pleural, irregular)
    truth_lungs = lungs.copy()
    near = (nodule_labels > 0) & (truth_lungs == 0)
    if near.any():  # nodules touching the pleura belong to the lung they grow from
        for nodule in planted:
            part = near & (nodule_labels == nodule.label)
            truth_lungs[part] = 1 if nodule.center_mm[0] < 0 else 2

    hu += rng.normal(0.0, noise_hu, size=shape).astype(np.float32)
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return Phantom(hu=hu, spacing=tuple(float(s) for s in spacing), origin=origin,
                   direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
                   lungs=truth_lungs, nodules=planted, nodule_labels=nodule_labels)


def _lung_regions(grid, body_a, body_b, extent, touching):
    """Two half-ellipsoid lungs: 1 = right (negative x), 2 = left, narrower (heart)."""
    lungs = np.zeros(grid.shape, dtype=np.uint8)
    z_centre, z_axis = 0.05 * extent[2], 0.42 * extent[2]
    shapes = ((1, -0.47 * body_a, 0.38 * body_a), (2, 0.50 * body_a, 0.34 * body_a))
    if touching:
        shapes = ((1, -0.42 * body_a, 0.45 * body_a), (2, 0.42 * body_a, 0.45 * body_a))
    for label, centre_x, axis_x in shapes:
        inside = (((grid.x - centre_x) / axis_x) ** 2 + ((grid.y - 0.05 * body_b) / (0.66 * body_b)) ** 2
                  + ((grid.z - z_centre) / z_axis) ** 2) <= 1.0
        base = grid.z >= z_centre - 0.75 * z_axis  # flat diaphragm side
        lungs[inside & base & ((grid.x < 0) == (label == 1))] = label
    return lungs


def _draw_ribs_and_spine(hu, grid, body_a, body_b, extent):
    ring = (grid.x / (body_a - 16)) ** 2 + (grid.y / (body_b - 16)) ** 2
    in_band = (ring <= 1.0) & (ring >= ((body_a - 24) / (body_a - 16)) ** 2)
    rib_pitch = 28.0
    rib_rows = (np.mod(grid.z + extent[2], rib_pitch) < 10.0) & (np.abs(grid.x) > 25)
    hu[np.broadcast_to(in_band & rib_rows, hu.shape)] = BONE_HU
    spine = (grid.x / 18.0) ** 2 + ((grid.y - 0.72 * body_b) / 18.0) ** 2 <= 1.0
    hu[np.broadcast_to(spine, hu.shape)] = BONE_HU * 0.7


def _draw_airways(hu, grid, body_a, body_b, z_top):
    carina = np.array([0.0, -0.05 * body_b, 0.30 * z_top])
    _draw_tube(hu, grid, np.array([0.0, -0.05 * body_b, z_top + 10]), carina, 8.0, AIR_HU)
    for side in (-1, 1):
        hilum = np.array([side * 0.42 * body_a, 0.0, 0.12 * z_top])
        _draw_tube(hu, grid, carina, hilum, 5.5, AIR_HU)


def _draw_vessels(hu, lungs, grid, rng, body_a, body_b, z_top):
    """A random branching tree per lung, from the hilum outwards, drawn inside the lungs only."""
    vessel = np.zeros(hu.shape, dtype=np.float32)
    for side in (-1, 1):
        hilum = np.array([side * 0.30 * body_a, 0.1 * body_b, 0.15 * z_top])
        for _ in range(3):
            direction = np.array([side * 1.0, rng.uniform(-0.6, 0.6), rng.uniform(-1.0, 1.0)])
            _branch(vessel, grid, rng, hilum, direction, 4.5, depth=4)
    inside = lungs > 0
    hu[inside] = np.maximum(hu[inside], LUNG_HU + (TISSUE_HU - LUNG_HU) * vessel[inside])


def _branch(vessel, grid, rng, start, direction, radius, depth):
    direction = direction / np.linalg.norm(direction)
    length = rng.uniform(7.0, 10.0) * radius
    end = start + direction * length
    _draw_tube(vessel, grid, start, end, radius, 1.0, soft=True)
    if depth == 0:
        return
    for _ in range(2):
        turn = rng.normal(0.0, 0.55, size=3)
        _branch(vessel, grid, rng, end, direction + turn, radius * 0.72, depth - 1)


def _draw_tube(image, grid, start, end, radius, value, soft=False):
    """A capped cylinder from start to end (mm); soft edges give partial-volume weights."""
    pad = radius + 2 * max(grid.spacing)
    (zs, ys, xs), (z, y, x) = grid.box(np.minimum(start, end) - pad, np.maximum(start, end) + pad)
    if min(a.stop - a.start for a in (zs, ys, xs)) <= 0:
        return
    axis = end - start
    t = ((x - start[0]) * axis[0] + (y - start[1]) * axis[1] + (z - start[2]) * axis[2]) / axis.dot(axis)
    t = np.clip(t, 0.0, 1.0)
    dist = np.sqrt((x - start[0] - t * axis[0]) ** 2 + (y - start[1] - t * axis[1]) ** 2
                   + (z - start[2] - t * axis[2]) ** 2)
    region = image[zs, ys, xs]
    if soft:
        weight = np.clip(0.5 + (radius - dist) / min(grid.spacing), 0.0, 1.0) * value
        np.maximum(region, weight, out=region)
    else:
        region[dist <= radius] = value


def _plant_nodules(hu, lungs, grid, rng, diameters, juxta_pleural, irregular):
    labels = np.zeros(hu.shape, dtype=np.uint16)
    planted: list[PhantomNodule] = []
    lung_voxels = np.argwhere(lungs > 0)
    for index, diameter in enumerate(diameters):
        touching, lobulated = index < juxta_pleural, juxta_pleural <= index < juxta_pleural + irregular
        centre = _nodule_centre(lungs, lung_voxels, grid, rng, diameter / 2, touching, planted)
        label = index + 1
        spheres = [(centre, diameter / 2)]
        if lobulated:
            for _ in range(3):
                offset = rng.normal(size=3)
                spheres.append((centre + 0.45 * diameter * offset / np.linalg.norm(offset), diameter / 4))
        for sphere_centre, radius in spheres:
            _draw_sphere(hu, labels, grid, sphere_centre, radius, label)
        planted.append(PhantomNodule(tuple(float(c) for c in centre), float(diameter), label,
                                     irregular=lobulated, juxta_pleural=touching))
    return planted, labels


def _nodule_centre(lungs, lung_voxels, grid, rng, radius, touching, planted):
    """A random centre inside a lung, clear of other nodules; on the pleura when `touching`."""
    directions = np.array([[a, b, c] for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
                           if (a, b, c) != (0, 0, 0)], dtype=np.float64)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    best = None
    for _ in range(400):
        z, y, x = lung_voxels[rng.integers(len(lung_voxels))]
        centre = np.array([grid.x[0, 0, x], grid.y[0, y, 0], grid.z[z, 0, 0]], dtype=np.float64)
        if any(np.linalg.norm(centre - np.array(p.center_mm)) < radius + p.diameter_mm / 2 + 8 for p in planted):
            continue
        inside = [_lung_at(lungs, grid, centre + d * (radius + 4.0)) for d in directions]
        if touching:
            near = [_lung_at(lungs, grid, centre + d * radius * 0.6) for d in directions]
            if all(near) and not all(inside) and abs(centre[0]) > 0.25 * abs(grid.x).max():
                return centre
        elif all(inside):
            return centre
        best = centre
    return best


def _lung_at(lungs, grid, point):
    index = [int(round((point[axis] - grid.origin[axis]) / grid.spacing[axis])) for axis in range(3)]
    if any(i < 0 or i >= n for i, n in zip(index, grid.shape[::-1])):
        return False
    return bool(lungs[index[2], index[1], index[0]])


def _draw_sphere(hu, labels, grid, centre, radius, label):
    pad = radius + 2 * max(grid.spacing)
    (zs, ys, xs), (z, y, x) = grid.box(centre - pad, centre + pad)
    dist = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)
    weight = np.clip(0.5 + (radius - dist) / min(grid.spacing), 0.0, 1.0)
    region = hu[zs, ys, xs]
    np.maximum(region, region + weight * (NODULE_HU - region), out=region)
    labels[zs, ys, xs][dist <= radius] = label


def detection_matches(center_mm, nodule: PhantomNodule) -> bool:
    """Whether a detection centred at center_mm (world x, y, z) found the planted nodule:
    within its radius (at least 3 mm) plus 2 mm."""
    distance = np.linalg.norm(np.asarray(center_mm, dtype=np.float64) - np.asarray(nodule.center_mm))
    return bool(distance <= max(nodule.diameter_mm / 2, 3.0) + 2.0)


def write_phantom(path, phantom: Phantom, labels: np.ndarray | None = None) -> None:
    """Write the phantom CT (or, given `labels`, that truth image) with its geometry.

    The format follows the suffix (.nii.gz, .nrrd, .mha), as SimpleITK decides.
    """
    array = phantom.hu if labels is None else labels
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(phantom.spacing)
    image.SetOrigin(phantom.origin)
    image.SetDirection(phantom.direction)
    sitk.WriteImage(image, str(path), useCompression=True)
