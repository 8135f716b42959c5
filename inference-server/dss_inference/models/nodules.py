"""Classical lung nodule detection: multi-scale blob response inside the lungs.

1. The lungs (from the lung model, plus what a closing on a ~3 mm grid adds, so nodules on
   the pleura come back in) are cropped; the image becomes contrast over the lung's median
   density and is 0 outside the lungs, so the chest wall vanishes and a nodule touching it
   looks like any other blob.
2. Scale-normalised Laplacian of Gaussian, -sigma^2 * LoG, for nodule diameters of about
   3 to 30 mm; each scale runs on a block-mean pyramid level where sigma is 1-2 voxels.
3. Local maxima are candidates; the Hessian eigenvalues at each one measure how blob-like
   (three equal negative eigenvalues) rather than tube-like (a vessel: one near zero) it is.
4. Candidates are de-duplicated across scales (non-maximum suppression in millimetres),
   grown into regions on the input grid (half-way threshold between nodule and lung,
   clipped to a sphere of 2 radii, opened to cut attached vessels), measured and scored
   (blob strength x blobness x size agreement x compactness).
5. False-positive reduction: the score is lowered for specks on the lung edge (much of
   their surface on the mediastinum, diaphragm or chest wall), vessel pieces (elongated
   regions, weak Hessian blobness) and findings on a single slice; the best `MAX_NODULES`
   at or above `OPERATING_POINT` are reported, one label each.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import ops
from .common import ModelResult, Progress, spacing_zyx, voxel_to_world

DIAMETERS_MM = (3.5, 5.0, 7.0, 10.0, 14.0, 20.0, 28.0)  # blob scales searched
BASE_SPACING_MM = 1.25      # finest pyramid level (block means of the input)
CROP_MARGIN_MM = 4.0        # around the lungs' bounding box
CLOSING_MM = 9.0            # closing that brings nodules on the pleura into the search region
MIN_DIAMETER_VOXELS = 1.5   # scales finer than this many voxels are skipped
MIN_VOXELS = 4              # smaller regions are noise or vessels seen end-on
MIN_DIAMETER_MM = 3.0
LIMIT_RADII = 2.0           # region growing stops at this many blob radii
OPENING_RADII = 0.35        # vessels thinner than ~2x this many radii are cut off
CLIP_HU = (-1000.0, 200.0)  # calcium and bone count as soft tissue
MIN_RESPONSE = 120.0        # -sigma^2 LoG in HU; a solid nodule in lung gives several hundred
MIN_BLOBNESS = 0.2
PEAKS_PER_SCALE = 5000      # strongest local maxima whose Hessian is examined
CANDIDATES_PER_SCALE = 300
MAX_CANDIDATES = 300        # grown and measured, after de-duplication
MAX_NODULES = 10
# False-positive reduction, calibrated on the phantoms (bench/inference.py, seeds 0-19) and
# checked on the real chest CT. Each (full, zero) pair maps a measure to a factor of the
# score: 1 up to `full`, falling linearly to 0 at `zero`.
WALL_CONTACT = (0.25, 0.6)  # share of the region's outer shell outside the lungs
ELONGATION = (3.0, 5.0)     # longest / shortest axis of the region (vessel pieces are long)
BLOBNESS = (0.55, 0.25)     # Hessian blobness at the centre (vessel sections, branchings)
SINGLE_SLICE = 0.5          # seen on one slice only: a vessel end-on or noise as likely
OPERATING_POINT = 0.19      # phantoms: sensitivity 0.925 at 0.3 false positives per scan
MAX_OVERLAP = 0.3           # a region mostly inside a better one is the same nodule


@dataclass
class Candidate:
    index: np.ndarray        # continuous (z, y, x) on the input grid
    radius_mm: float
    response: float
    blobness: float
    score: float = 0.0


def detect_nodules(hu: torch.Tensor, lung_labels: np.ndarray, volume, progress: Progress) -> ModelResult:
    spacing = spacing_zyx(volume)
    labels = np.zeros(hu.shape, dtype=np.uint16)
    if not lung_labels.any():
        return ModelResult(labels=labels, report={"nodules": []})
    crop = _lung_box(lung_labels, spacing)
    lungs = _search_region(torch.from_numpy(lung_labels[crop] > 0).to(hu.device), spacing)
    image = hu[crop].clamp(*CLIP_HU)
    background = float(image[lungs].median())
    # contrast over the lung background; outside the lungs (and beyond the crop) it is 0
    image = torch.where(lungs, image - background, torch.zeros_like(image))
    progress("nodules: blob response", 0.55)
    factors = ops.block_factors(spacing, BASE_SPACING_MM, image.shape)
    base_spacing = tuple(s * f for s, f in zip(spacing, factors))
    coarse_image = ops.downsample(image, factors)
    coarse_lungs = ops.downsample(lungs.float(), factors) > 0.5
    candidates = []
    for diameter in DIAMETERS_MM:
        if diameter < MIN_DIAMETER_VOXELS * max(spacing):
            continue  # finer than the image can show
        for found in _scale_candidates(coarse_image, coarse_lungs, base_spacing, diameter):
            found.index = (found.index + 0.5) * np.array(factors) - 0.5
            candidates.append(found)
    progress("nodules: candidates", 0.8)
    kept = _suppress(candidates, spacing)
    crop_labels = labels[crop]
    offset = np.array([s.start for s in crop], dtype=np.float64)
    nodules = _measure(image.cpu().numpy(), kept, spacing, crop_labels, lung_labels[crop] > 0)
    for nodule in nodules:
        nodule["center_mm"] = _world(volume, nodule["center_mm"] + offset)
        nodule["bbox_mm"] = [_world(volume, corner) for corner in _world_box(volume, nodule["bbox_mm"] + offset)]
    return ModelResult(labels=labels, report={"nodules": nodules})


def _world(volume, index) -> list[float]:
    return [round(float(v), 2) for v in voxel_to_world(volume, np.asarray(index, dtype=np.float64))]


def _world_box(volume, corners: np.ndarray) -> list[np.ndarray]:
    """The world-axis-aligned box of an index box (its two corners given as rows): with a
    flipped direction the low index corner is not the low world corner."""
    grid = np.array([[corners[i, 0], corners[j, 1], corners[k, 2]]
                     for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    world = voxel_to_world(volume, grid)
    low, high = world.min(axis=0), world.max(axis=0)
    to_index = np.linalg.inv(np.asarray(volume.direction, dtype=np.float64).reshape(3, 3)
                             * np.asarray(volume.spacing, dtype=np.float64))
    return [((point - np.asarray(volume.origin)) @ to_index.T)[::-1] for point in (low, high)]


def _search_region(lungs: torch.Tensor, spacing) -> torch.Tensor:
    """The lungs plus what a closing of about CLOSING_MM adds on a ~3 mm grid: nodules on
    the pleura, which the lung mask leaves out, come back in."""
    factors = ops.block_factors(spacing, 3.0, lungs.shape)
    coarse = ops.downsample(lungs.float(), factors) > 0.5
    coarse_spacing = tuple(s * f for s, f in zip(spacing, factors))
    closed = ops.close(coarse, ops.radius_in_voxels(CLOSING_MM, coarse_spacing))
    return lungs | ops.upsample_labels(closed & ~coarse, factors, lungs.shape)


def _lung_box(lung_labels: np.ndarray, spacing) -> tuple[slice, ...]:
    present = [np.flatnonzero(lung_labels.any(axis=tuple(a for a in range(3) if a != axis)))
               for axis in range(3)]
    margin = [int(math.ceil(3 * CROP_MARGIN_MM / s)) for s in spacing]
    return tuple(slice(max(0, int(p[0]) - m), min(n, int(p[-1]) + m + 1))
                 for p, m, n in zip(present, margin, lung_labels.shape))


def _scale_candidates(image: torch.Tensor, mask: torch.Tensor, base_spacing, diameter_mm: float):
    """Local maxima of -sigma^2 LoG at one scale, with their blobness."""
    sigma = diameter_mm / (2.0 * math.sqrt(3.0))
    level = max(0, int(math.floor(math.log2(sigma / max(base_spacing)))))
    level_factors = tuple(max(1, int(round(2 ** level * min(base_spacing) / s))) for s in base_spacing)
    spacing = tuple(s * f for s, f in zip(base_spacing, level_factors))
    level_image = ops.downsample(image, level_factors)
    level_mask = ops.downsample(mask.float(), level_factors) > 0.5
    smooth = ops.gaussian_blur(level_image, tuple(math.sqrt(max(sigma**2 - (s / 2) ** 2, 0.0)) / s
                                                  for s in spacing))
    padded = F.pad(smooth[None, None], (1, 1, 1, 1, 1, 1))[0, 0]
    response = _laplacian(padded, spacing).mul_(-sigma**2)
    index = _local_maxima(response, level_mask)
    if len(index) == 0:
        return []
    values = response[index[:, 0], index[:, 1], index[:, 2]]
    order = values.argsort(descending=True)[:PEAKS_PER_SCALE]
    index, values = index[order], values[order]
    blobness = torch.from_numpy(_blobness(padded, index + 1, spacing)).to(values.device)
    order = (values * blobness.sqrt()).argsort(descending=True)[:CANDIDATES_PER_SCALE].cpu().numpy()
    index, values, blobness = index.cpu().numpy(), values.cpu().numpy(), blobness.cpu().numpy()
    return [Candidate((index[i] + 0.5) * np.array(level_factors) - 0.5, math.sqrt(3.0) * sigma,
                      float(values[i]), float(blobness[i]))
            for i in order if blobness[i] >= MIN_BLOBNESS]


def _local_maxima(response: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, 3) indices inside `mask`, above MIN_RESPONSE, that no 26-neighbour exceeds."""
    peaks = response == F.max_pool3d(response[None, None], 3, 1, 1)[0, 0]
    return (peaks & mask & (response > MIN_RESPONSE)).nonzero()


def _laplacian(padded: torch.Tensor, spacing) -> torch.Tensor:
    """Sum of second differences (per mm^2) of a volume padded by one voxel on every side."""
    centre = padded[1:-1, 1:-1, 1:-1]
    total = torch.zeros_like(centre)
    for axis, (before, after) in enumerate((((slice(None, -2), slice(1, -1), slice(1, -1)),
                                              (slice(2, None), slice(1, -1), slice(1, -1))),
                                             ((slice(1, -1), slice(None, -2), slice(1, -1)),
                                              (slice(1, -1), slice(2, None), slice(1, -1))),
                                             ((slice(1, -1), slice(1, -1), slice(None, -2)),
                                              (slice(1, -1), slice(1, -1), slice(2, None))))):
        second = padded[before] + padded[after]
        second.sub_(centre, alpha=2.0)
        total.add_(second, alpha=1.0 / spacing[axis] ** 2)
    return total


def _blobness(padded: torch.Tensor, index: torch.Tensor, spacing) -> np.ndarray:
    """|smallest| / |largest| Hessian eigenvalue where all three are negative, else 0:
    1 for a sphere, near 0 for a tube (vessel) or a sheet (fissure)."""
    def at(dz, dy, dx):
        return padded[index[:, 0] + dz, index[:, 1] + dy, index[:, 2] + dx].double()
    centre = at(0, 0, 0)
    h = [float(s) for s in spacing]
    hessian = torch.empty((len(index), 3, 3), dtype=torch.float64, device=padded.device)
    steps = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
    for a in range(3):
        hessian[:, a, a] = (at(*steps[a]) + at(*(-s for s in steps[a])) - 2 * centre) / h[a] ** 2
        for b in range(a + 1, 3):
            plus = [p + q for p, q in zip(steps[a], steps[b])]
            minus = [p - q for p, q in zip(steps[a], steps[b])]
            value = (at(*plus) + at(*(-s for s in plus)) - at(*minus) - at(*(-s for s in minus)))
            hessian[:, a, b] = hessian[:, b, a] = value / (4 * h[a] * h[b])
    eigen = torch.linalg.eigvalsh(hessian)  # ascending: most negative first
    ratio = torch.where(eigen[:, 2] < 0, eigen[:, 2] / eigen[:, 0], torch.zeros_like(eigen[:, 0]))
    return ratio.clamp(0, 1).cpu().numpy()


def _suppress(candidates: list[Candidate], spacing) -> list[Candidate]:
    """Strongest first; drop near-duplicates (a centre within the smaller radius of one kept).
    Candidates of different scales on one nodule are all grown: the better measured region
    wins in `_measure`, which drops regions mostly inside a better one."""
    for candidate in candidates:
        candidate.score = candidate.response * math.sqrt(candidate.blobness)
    kept: list[Candidate] = []
    scale = np.array(spacing)
    for candidate in sorted(candidates, key=lambda c: c.score, reverse=True):
        if all(np.linalg.norm((candidate.index - other.index) * scale) > min(candidate.radius_mm, other.radius_mm)
               for other in kept):
            kept.append(candidate)
        if len(kept) >= MAX_CANDIDATES:
            break
    return kept


def _measure(image: np.ndarray, candidates, spacing, labels: np.ndarray,
             lungs: np.ndarray) -> list[dict]:
    """Grow each candidate on the input grid (crop), paint the best into `labels`, and describe
    them in index units of the crop (the caller turns them into world mm). `lungs`: the lung
    mask on the crop, without the search region's additions."""
    measured = []
    for candidate in candidates:
        region, box, outside = _grow(image, candidate, spacing)
        if region is None:
            continue
        volume_mm3 = float(region.sum()) * float(np.prod(spacing))
        diameter = (6.0 * volume_mm3 / math.pi) ** (1.0 / 3.0)
        if region.sum() < MIN_VOXELS or diameter < MIN_DIAMETER_MM:
            continue  # a noise speck or a vessel seen end-on, not a nodule
        score = _score(candidate, diameter, outside)
        if score >= OPERATING_POINT:  # the factor is at most 1: only then can it matter
            score *= _false_positive_factor(region, box, spacing, lungs, candidate.blobness)
        if score >= OPERATING_POINT:
            measured.append((score, region, box, volume_mm3, diameter))
    measured.sort(key=lambda item: item[0], reverse=True)
    report: list[dict] = []
    for score, region, box, volume_mm3, diameter in measured:
        painted = labels[box]
        if (painted[region] > 0).mean() > MAX_OVERLAP or len(report) == MAX_NODULES:
            continue  # the same nodule seen again (a lobe, another scale)
        label = len(report) + 1
        painted[region & (painted == 0)] = label
        voxels = np.argwhere(region) + np.array([s.start for s in box])
        report.append({
            "center_mm": voxels.mean(axis=0),
            "diameter_mm": round(diameter, 2),
            "volume_mm3": round(volume_mm3, 1),
            "score": round(score, 4),
            "bbox_mm": np.array([voxels.min(axis=0) - 0.5, voxels.max(axis=0) + 0.5]),
            "label": label,
        })
    return report


def _grow(image, candidate, spacing):
    """The nodule around a candidate: voxels above half its contrast within LIMIT_RADII
    radii, opened (erode, keep the part at the centre, dilate back) so that vessels thinner
    than about 0.7 radii are cut off. Also the share of it beyond 1.25 radii: a nodule has
    almost none, a vessel running through has many."""
    limit = LIMIT_RADII * candidate.radius_mm + max(spacing)
    centre = candidate.index
    box = tuple(slice(max(0, int(math.floor(c - limit / s))), min(n, int(math.ceil(c + limit / s)) + 1))
                for c, s, n in zip(centre, spacing, image.shape))
    patch = image[box]
    grid = np.meshgrid(*[(np.arange(b.start, b.stop) - c) * s for b, c, s in zip(box, centre, spacing)],
                       indexing="ij")
    distance = np.sqrt(sum(g**2 for g in grid))
    core_radius = max(candidate.radius_mm / 2, max(spacing))
    core = patch[distance <= core_radius]
    if core.size == 0:
        return None, box, 1.0
    above = torch.from_numpy((patch > float(np.median(core)) / 2) & (distance <= limit))
    cut = ops.radius_in_voxels(OPENING_RADII * candidate.radius_mm, spacing)
    opened = _component_at_centre(ops.erode(above, cut).numpy(), distance, core_radius)
    if opened is not None:  # a nodule too small to survive the erosion is kept as it is
        above &= ops.dilate(torch.from_numpy(opened), cut)
    region = _component_at_centre(above.numpy(), distance, core_radius)
    if region is None:
        return None, box, 1.0
    outside = float((region & (distance > 1.25 * candidate.radius_mm)).sum()) / float(region.sum())
    return region, box, outside


def _component_at_centre(mask: np.ndarray, distance: np.ndarray, core_radius: float):
    components, _ = ops.connected_components(mask)
    near = components[distance <= core_radius]
    near = near[near > 0]
    return None if near.size == 0 else components == np.bincount(near).argmax()


def _false_positive_factor(region: np.ndarray, box, spacing, lungs: np.ndarray, blobness: float) -> float:
    """0..1: how unlike a juxtapleural speck or a vessel piece the grown region is."""
    shell = ops.dilate(torch.from_numpy(region), (1, 1, 1)).numpy() & ~region
    wall_contact = float((~lungs[box][shell]).mean()) if shell.any() else 0.0
    voxels = np.argwhere(region) * np.array(spacing)
    # each voxel's own extent (spacing^2 / 12) keeps regions of a few voxels from looking flat
    spread = np.cov(voxels.T) if len(voxels) > 1 else np.zeros((3, 3))
    axes = np.linalg.eigvalsh(spread + np.diag(np.array(spacing) ** 2 / 12.0))
    elongation = math.sqrt(axes[2] / axes[0])
    single_slice = SINGLE_SLICE if np.ptp(voxels[:, 0]) == 0 else 1.0
    return (_ramp(wall_contact, *WALL_CONTACT) * _ramp(elongation, *ELONGATION)
            * _ramp(blobness, *BLOBNESS) * single_slice)


def _ramp(value: float, full: float, zero: float) -> float:
    """1 at or beyond `full` (on the side away from `zero`), 0 at or beyond `zero`, linear between."""
    return min(1.0, max(0.0, (zero - value) / (zero - full)))


def _score(candidate: Candidate, diameter: float, outside: float) -> float:
    """0..1: blob strength times blobness, lowered when the grown region reaches far beyond
    the blob (a vessel running through) or disagrees with the blob scale."""
    strength = 1.0 - math.exp(-candidate.response / 400.0)
    size_ratio = diameter / (2.0 * candidate.radius_mm)
    size_agreement = math.exp(-(math.log(max(size_ratio, 1e-3)) ** 2) / (2 * 0.5**2))
    compactness = max(0.0, 1.0 - 2.0 * outside)
    size_certainty = 1.0 - math.exp(-diameter / 6.0)  # the smallest blobs are mostly vessels
    return strength * candidate.blobness * size_agreement * compactness * size_certainty
