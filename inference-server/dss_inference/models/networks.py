"""The learned models: a small 3-D U-Net for the lungs and a 3-D CNN that re-scores nodule
candidates, their weight loading (TorchScript or state dict) and sliding-window inference."""
from __future__ import annotations

import pickle
import zipfile
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import ModelLoadError

HU_WINDOW = (-1024.0, 600.0)
DEFAULT_LUNG_CONFIG = {"spacing_mm": 3.0, "patch": 64, "overlap": 0.5}
DEFAULT_NODULE_CONFIG = {"spacing_mm": 1.0, "patch": 32}


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 3, padding=1), nn.InstanceNorm3d(out_channels, affine=True),
        nn.LeakyReLU(0.01, inplace=True),
        nn.Conv3d(out_channels, out_channels, 3, padding=1), nn.InstanceNorm3d(out_channels, affine=True),
        nn.LeakyReLU(0.01, inplace=True))


class UNet3D(nn.Module):
    """Encoder-decoder with skip connections; `classes` logits per voxel (0 = background)."""

    def __init__(self, channels: int = 8, depth: int = 3, classes: int = 3):
        super().__init__()
        widths = [channels * 2**level for level in range(depth)]
        self.encoders = nn.ModuleList(_block(1 if i == 0 else widths[i - 1], w) for i, w in enumerate(widths))
        # decoders[0] is the deepest, so that forward() iterates them in order (TorchScript)
        self.decoders = nn.ModuleList(_block(widths[i] + widths[i + 1], widths[i])
                                      for i in reversed(range(depth - 1)))
        self.head = nn.Conv3d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for level, encoder in enumerate(self.encoders):
            if level > 0:
                x = F.max_pool3d(x, 2)
            x = encoder(x)
            skips.append(x)
        for step, decoder in enumerate(self.decoders):
            skip = skips[-2 - step]
            x = F.interpolate(x, size=skip.shape[2:], mode="trilinear", align_corners=False)
            x = decoder(torch.cat([skip, x], dim=1))
        return self.head(x)


class CandidateNet(nn.Module):
    """Patch around a candidate -> one logit: nodule (positive) or not."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.features = nn.Sequential(_block(1, channels), nn.MaxPool3d(2),
                                      _block(channels, 2 * channels), nn.MaxPool3d(2),
                                      _block(2 * channels, 4 * channels), nn.AdaptiveAvgPool3d(1))
        self.classifier = nn.Linear(4 * channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))[:, 0]


def _unet_from_state(state: dict) -> UNet3D:
    depth = len({key.split(".")[1] for key in state if key.startswith("encoders.")})
    if depth == 0 or "head.weight" not in state:
        raise KeyError("encoders.*, head.weight")
    return UNet3D(channels=state["encoders.0.0.weight"].shape[0], depth=depth,
                  classes=state["head.weight"].shape[0])


def _candidate_net_from_state(state: dict) -> CandidateNet:
    if "features.0.0.weight" not in state or "classifier.weight" not in state:
        raise KeyError("features.0.0.weight, classifier.weight")
    return CandidateNet(channels=state["features.0.0.weight"].shape[0])


BUILDERS = {"lung": (_unet_from_state, DEFAULT_LUNG_CONFIG),
            "nodule": (_candidate_net_from_state, DEFAULT_NODULE_CONFIG)}


def load_network(path: str, kind: str, device: torch.device, setting: str) -> tuple[nn.Module, dict]:
    """A TorchScript archive (torch.jit.save) or a state dict (torch.save of `state_dict()`,
    optionally as {"state_dict": ..., "config": {...}}) -> (module in eval mode, config)."""
    build, defaults = BUILDERS[kind]
    file = Path(path)
    if not file.is_file():
        raise ModelLoadError(f"{setting}={path}: no such file")
    if not zipfile.is_zipfile(file):
        raise ModelLoadError(f"{setting}={path}: not a TorchScript archive or a torch.save file")
    with zipfile.ZipFile(file) as archive:
        scripted = any("/code/" in name for name in archive.namelist())
    try:
        if scripted:
            module, config = torch.jit.load(str(file), map_location=device), dict(defaults)
        else:
            module, config = _load_state_dict(file, build, defaults, device)
    except ModelLoadError:
        raise
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(f"{setting}={path}: holds Python objects besides tensors; only weights "
                             "are loaded (torch.load weights_only=True)") from exc
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError, EOFError) as exc:
        reason = f"missing keys {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise ModelLoadError(f"{setting}={path}: not usable as the {kind} model ({reason})") from exc
    return module.to(device).eval(), config


def _load_state_dict(file: Path, build, defaults: dict, device: torch.device):
    loaded = torch.load(str(file), map_location="cpu", weights_only=True)
    if not isinstance(loaded, dict):
        raise ModelLoadError(f"{file}: holds a {type(loaded).__name__}, not a state dict")
    config = dict(defaults)
    if "state_dict" in loaded:
        config.update(loaded.get("config") or {})
        loaded = loaded["state_dict"]
    module = build(loaded)
    module.load_state_dict(loaded, strict=True)
    return module, config


def normalise(hu: torch.Tensor) -> torch.Tensor:
    low, high = HU_WINDOW
    return (hu.clamp(low, high) - low) / (high - low) * 2.0 - 1.0


def sliding_window(network: nn.Module, image: torch.Tensor, patch: int, overlap: float,
                   classes: int | None = None) -> torch.Tensor:
    """Class probabilities (C, z, y, x) of `image` (z, y, x, normalised), patch by patch with
    overlap, each patch weighted by a Gaussian so that patch borders count least."""
    shape = image.shape
    sizes = [min(patch, n) for n in shape]
    batch = image[None, None]
    steps = [max(1, int(s * (1 - overlap))) for s in sizes]
    starts = [sorted({*range(0, n - s + 1, st), n - s}) for n, s, st in zip(shape, sizes, steps)]
    weight = _gaussian_weight(sizes, image.device)
    total, norm = None, torch.zeros(shape, device=image.device)
    autocast = torch.autocast("cuda", dtype=torch.float16) if image.device.type == "cuda" else nullcontext()
    with torch.inference_mode(), autocast:
        for z in starts[0]:
            for y in starts[1]:
                for x in starts[2]:
                    window = batch[..., z:z + sizes[0], y:y + sizes[1], x:x + sizes[2]]
                    probs = torch.softmax(network(window).float(), dim=1)[0] * weight
                    if total is None:
                        total = torch.zeros((probs.shape[0], *shape), device=image.device)
                    total[:, z:z + sizes[0], y:y + sizes[1], x:x + sizes[2]] += probs
                    norm[z:z + sizes[0], y:y + sizes[1], x:x + sizes[2]] += weight
    assert total is not None  # every axis has at least one window
    return total / norm.clamp_min(1e-6)


def _gaussian_weight(sizes, device) -> torch.Tensor:
    axes = [torch.exp(-0.5 * ((torch.arange(s, device=device) - (s - 1) / 2) / (s / 4)) ** 2) for s in sizes]
    return (axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]).clamp_min(1e-3)
