"""Test-only models and image helpers for the inference server tests.

The models are deliberately trivial (thresholds, a slow model that waits on a gate, one that
runs out of GPU memory, one that crashes): they exercise queueing, cancellation, time limits
and error paths quickly and deterministically. The real models are tested elsewhere.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

# A rotated, shifted, anisotropic grid: geometry bugs show up as mismatches.
ROTATION = (0.0, -1.0, 0.0,
            1.0, 0.0, 0.0,
            0.0, 0.0, 1.0)
SPACING = (0.7, 0.8, 2.5)
ORIGIN = (-120.25, 33.5, -7.125)


@dataclass
class ModelResult:
    labels: np.ndarray
    report: dict


class ThresholdModel:
    """Labels air-like voxels 1 and dense voxels 2; reports the voxel counts."""

    kind = "classical"

    def __init__(self, name: str, device: str):
        self.name, self.device = name, device

    def run(self, volume, progress):
        progress("threshold", 0.5)
        labels = np.zeros(volume.hu.shape, np.uint8)
        labels[volume.hu < -500] = 1
        labels[volume.hu > 300] = 2
        progress("threshold", 1.0)
        # numpy integers, as real models tend to report them
        return ModelResult(labels, {"counts": {"air": (labels == 1).sum(),
                                               "dense": (labels == 2).sum()}})


class GatedModel(ThresholdModel):
    """Keeps reporting progress until its gate opens: a long job that honours cancellation."""

    def __init__(self, name, device, gate: threading.Event, started: threading.Event):
        super().__init__(name, device)
        self.gate, self.started = gate, started

    def run(self, volume, progress):
        progress("waiting", 0.25)
        self.started.set()
        while not self.gate.wait(0.02):
            progress("waiting", 0.25)
        return super().run(volume, progress)


class OutOfMemoryOnceModel(ThresholdModel):
    """Raises CUDA out-of-memory on its first run, then works: the CPU retry succeeds."""

    def __init__(self, name, device, always: bool = False):
        super().__init__(name, device)
        self.calls, self.always = 0, always

    def run(self, volume, progress):
        self.calls += 1
        if self.always or self.calls == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return super().run(volume, progress)


class GreedyCudaModel(ThresholdModel):
    """Asks a GPU for 4 TiB: a real CUDA out-of-memory error; on the CPU it just thresholds."""

    def run(self, volume, progress):
        if str(self.device).startswith("cuda"):
            torch.empty(1 << 42, dtype=torch.uint8, device=self.device)
        return super().run(volume, progress)


class OptionsModel(ThresholdModel):
    """Takes the nodule model's options and reports those it was run with."""

    options = {"min_score": (0.0, 1.0), "min_diameter_mm": (0.0, 100.0),
               "max_diameter_mm": (0.0, 100.0)}

    def run(self, volume, progress, **options):
        result = super().run(volume, progress)
        return ModelResult(result.labels, {**result.report, "options": options})


class CrashingModel(ThresholdModel):
    def run(self, volume, progress):
        raise ValueError("this model always fails")



def load_test_models(settings, gate: threading.Event, started: threading.Event):
    return {
        "lung_segmentation": ThresholdModel("lung_segmentation", settings.device),
        "nodule_detection": OptionsModel("nodule_detection", settings.device),
        "gated": GatedModel("gated", settings.device, gate, started),
        "oom_once": OutOfMemoryOnceModel("oom_once", settings.device),
        "oom_always": OutOfMemoryOnceModel("oom_always", settings.device, always=True),
        "crashing": CrashingModel("crashing", settings.device),
        "cuda_greedy": GreedyCudaModel("cuda_greedy", settings.device),
    }


def ct_like_image(size=(24, 20, 10), direction=ROTATION, pixel=sitk.sitkInt16) -> sitk.Image:
    """A small CT-like volume: air around, a soft-tissue block, a dense core."""
    z, y, x = size[2], size[1], size[0]
    hu = np.full((z, y, x), -1000, np.int16)
    hu[2:-2, 3:-3, 4:-4] = 40
    hu[4:-4, 6:-6, 8:-8] = 700
    image = sitk.GetImageFromArray(hu)
    image = sitk.Cast(image, pixel)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(direction)
    return image


def write_image(image: sitk.Image, path: Path) -> Path:
    sitk.WriteImage(image, str(path), useCompression=path.name.endswith(".gz"))
    return path


def wait_finished(get, timeout: float = 30.0):
    """Poll `get()` (a response) until it is not 202; returns that response."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = get()
        if response.status_code != 202:
            return response
        time.sleep(0.02)
    raise TimeoutError("the job did not finish")


def geometry(image: sitk.Image):
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()



def create_test_app():
    """The app on the test models, settings from the environment: for a gunicorn process."""
    from dss_inference import create_app

    opened = threading.Event()
    opened.set()
    return create_app({"load_models": lambda settings: load_test_models(settings, opened,
                                                                        threading.Event())})
