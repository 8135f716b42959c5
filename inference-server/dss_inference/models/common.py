"""What every model shares: the result type, the device choice, voxel geometry."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

Progress = Callable[[str, float], None]


class ModelLoadError(ValueError):
    """A weight file that cannot be used, with the reason."""


@dataclass
class ModelResult:
    labels: np.ndarray  # (z, y, x) uint8 or uint16, on the input's grid
    report: dict = field(default_factory=dict)


def resolve_device(name: str | None) -> torch.device:
    """"auto" -> the first GPU when torch sees one, else the CPU; "cuda" without a GPU is an error."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but torch sees no GPU")
    return device


def spacing_zyx(volume) -> tuple[float, float, float]:
    sx, sy, sz = (float(s) for s in volume.spacing)
    return sz, sy, sx


def direction_matrix(volume) -> np.ndarray:
    return np.asarray(volume.direction, dtype=np.float64).reshape(3, 3)


def voxel_to_world(volume, zyx) -> np.ndarray:
    """World (x, y, z) mm, LPS as ITK, of continuous voxel indices given as rows (z, y, x)."""
    ijk = np.asarray(zyx, dtype=np.float64)[..., ::-1]
    matrix = direction_matrix(volume) * np.asarray(volume.spacing, dtype=np.float64)
    return ijk @ matrix.T + np.asarray(volume.origin, dtype=np.float64)


def superior_is_high_index(volume) -> bool:
    """Whether the head end of the patient lies at the last axial slice (physical z grows)."""
    return direction_matrix(volume)[2, 2] >= 0


def voxel_volume_ml(volume) -> float:
    return float(np.prod(volume.spacing)) / 1000.0
