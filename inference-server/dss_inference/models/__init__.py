"""The models the service runs: `load_models(settings)` -> {"lung_segmentation", "nodule_detection"}.

Each model has `name`, `kind` ("classical" or "learned"), `device` (torch.device), `options`
(what a job may set: {name: (lowest, highest)}, numbers) and
`run(volume, progress, **options) -> ModelResult(labels, report)`. Without weight files the classical
pipelines run; `settings.lung_model_weights` / `settings.nodule_model_weights` switch to the
learned ones. `progress(stage, fraction)` is called between stages and may raise to cancel.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import lungs, networks, nodules, ops
from .common import ModelLoadError, ModelResult, Progress, resolve_device, spacing_zyx

__all__ = ["load_models", "LungSegmentation", "NoduleDetection", "ModelLoadError", "ModelResult"]


def load_models(settings) -> dict[str, object]:
    device = resolve_device(getattr(settings, "device", "auto"))
    lung_model = LungSegmentation(device, getattr(settings, "lung_model_weights", None))
    nodule_model = NoduleDetection(device, lung_model, getattr(settings, "nodule_model_weights", None))
    return {lung_model.name: lung_model, nodule_model.name: nodule_model}


def _as_tensor(volume, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(volume.hu, dtype=np.float32)).to(device)


class LungSegmentation:
    """Labels 1 = the patient's right lung, 2 = the left lung; report in millilitres."""

    name = "lung_segmentation"
    options: dict[str, tuple[float, float]] = {}
    network: torch.nn.Module | None

    def __init__(self, device: torch.device, weights: str | None = None):
        self.device = device
        self.network, self.config = (None, {}) if not weights else \
            networks.load_network(weights, "lung", device, "LUNG_MODEL_WEIGHTS")
        self.kind = "learned" if self.network is not None else "classical"

    def run(self, volume, progress: Progress) -> ModelResult:
        progress("lungs: preprocess", 0.0)
        hu = _as_tensor(volume, self.device)
        if self.network is None:
            return lungs.segment_lungs(hu, volume, progress)
        return self._run_network(self.network, hu, volume, progress)

    def _run_network(self, network: torch.nn.Module, hu: torch.Tensor, volume, progress: Progress) -> ModelResult:
        spacing = spacing_zyx(volume)
        factors = ops.block_factors(spacing, float(self.config["spacing_mm"]), hu.shape)
        work_spacing = tuple(s * f for s, f in zip(spacing, factors))
        coarse = ops.downsample(hu, factors)
        progress("lungs: network", 0.2)
        probs = networks.sliding_window(network, networks.normalise(coarse),
                                        int(self.config["patch"]), float(self.config["overlap"]))
        progress("lungs: postprocess", 0.8)
        foreground = (probs.argmax(dim=0) > 0).cpu().numpy()
        pieces = lungs.lung_pieces(foreground, coarse.cpu().numpy(), work_spacing)
        body = (coarse > lungs.AIR_HU).cpu().numpy()
        coarse_labels = torch.from_numpy(lungs.assign_sides(pieces, body, volume, factors))
        labels = ops.upsample_labels(coarse_labels, factors, hu.shape).numpy()
        return ModelResult(labels=labels.astype(np.uint8), report=lungs.volume_report(labels, volume))


class NoduleDetection:
    """Labels 1..n, one per nodule in report order (best first); report in world mm."""

    name = "nodule_detection"
    options = {"min_score": (0.0, 1.0), "min_diameter_mm": (0.0, 100.0),
               "max_diameter_mm": (0.0, 100.0)}
    network: torch.nn.Module | None

    def __init__(self, device: torch.device, lung_model: LungSegmentation, weights: str | None = None):
        self.device, self.lung_model = device, lung_model
        self.network, self.config = (None, {}) if not weights else \
            networks.load_network(weights, "nodule", device, "NODULE_MODEL_WEIGHTS")
        self.kind = "learned" if self.network is not None else "classical"

    def run(self, volume, progress: Progress, *, min_score: float = nodules.OPERATING_POINT,
            min_diameter_mm: float = nodules.MIN_DIAMETER_MM,
            max_diameter_mm: float = math.inf) -> ModelResult:
        """The findings with at least `min_score` and a diameter in the range. A `min_score`
        below OPERATING_POINT brings back nothing the classical detection left out."""
        lung_result = self.lung_model.run(volume, lambda stage, f: progress(stage, 0.5 * f))
        hu = _as_tensor(volume, self.device)
        result = nodules.detect_nodules(hu, lung_result.labels, volume, progress)
        if self.network is not None and result.report["nodules"]:
            progress("nodules: classifier", 0.9)
            result = self._rescore(self.network, hu, volume, result)
        return _relabelled(result, [
            nodule for nodule in result.report["nodules"] if nodule["score"] >= min_score
            and min_diameter_mm <= nodule["diameter_mm"] <= max_diameter_mm])

    def _rescore(self, network: torch.nn.Module, hu: torch.Tensor, volume, result: ModelResult) -> ModelResult:
        """Score each classical candidate by the network's probability and reorder labels."""
        patches = torch.stack([self._patch(hu, volume, nodule["center_mm"]) for nodule in result.report["nodules"]])
        with torch.inference_mode():
            probability = torch.sigmoid(network(patches[:, None]).float().reshape(-1)).cpu().numpy()
        found = sorted(zip(probability, result.report["nodules"]), key=lambda item: -item[0])
        return _relabelled(result, [{**nodule, "score": round(float(score), 4)}
                                    for score, nodule in found])

    def _patch(self, hu: torch.Tensor, volume, center_mm) -> torch.Tensor:
        """A cube of `patch` voxels of `spacing_mm` around a world point, trilinear; beyond
        the image the edge values repeat."""
        size, step = int(self.config["patch"]), float(self.config["spacing_mm"])
        offsets = (torch.arange(size, dtype=torch.float64) - (size - 1) / 2) * step
        grid_mm = torch.stack(torch.meshgrid(offsets, offsets, offsets, indexing="ij"), dim=-1)  # z,y,x
        matrix = np.asarray(volume.direction, dtype=np.float64).reshape(3, 3) * np.asarray(volume.spacing)
        to_index = torch.from_numpy(np.linalg.inv(matrix))
        world = torch.tensor(center_mm, dtype=torch.float64) + grid_mm.flip(-1)  # x,y,z offsets
        index = (world - torch.tensor(volume.origin, dtype=torch.float64)) @ to_index.T  # i,j,k
        shape = torch.tensor(hu.shape[::-1], dtype=torch.float64)
        normalised = (2 * index / (shape - 1).clamp_min(1) - 1).float().to(hu.device)
        sample = torch.nn.functional.grid_sample(networks.normalise(hu)[None, None], normalised[None],
                                                 mode="bilinear", padding_mode="border", align_corners=True)
        return sample[0, 0]


def _relabelled(result: ModelResult, nodules: list[dict]) -> ModelResult:
    """Labels 1..n in the order of `nodules` (some of `result`'s, each with its label there);
    the voxels of the nodules left out become background."""
    relabel = np.zeros(len(result.report["nodules"]) + 1, dtype=np.uint16)
    report = []
    for new_label, nodule in enumerate(nodules, 1):
        relabel[nodule["label"]] = new_label
        report.append({**nodule, "label": new_label})
    return ModelResult(labels=relabel[result.labels], report={"nodules": report})
