"""Every setting of the inference server, read from the environment here and nowhere else."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


def _env(name: str, default: str | None) -> str | None:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def _optional_int(text: str | None) -> int | None:
    return None if text is None else int(text)


@dataclass(frozen=True)
class Settings:
    port: int = 8081
    output_dir: Path = Path("var/inference")
    # "auto", "cpu" or "cuda" as configured; create_app hands the models a resolved
    # torch device ("cpu", "cuda:0", ...) in this same field.
    device: str = "auto"
    # None: one per visible GPU when running on CUDA, else 1.
    workers: int | None = None
    queue_size: int = 8
    job_timeout: float = 900.0
    max_voxels: int = 1_000_000_000
    max_upload_bytes: int = 4 * 1024**3
    max_zip_members: int = 10_000
    result_retention: float = 3600.0
    lung_model_weights: str | None = None
    nodule_model_weights: str | None = None
    # Tests inject a loader here; None means dss_inference.models.load_models.
    load_models: Callable[["Settings"], dict[str, Any]] | None = field(default=None, compare=False)


def from_environment() -> Settings:
    return Settings(
        port=int(_env("INFERENCE_PORT", "8081")),
        output_dir=Path(_env("INFERENCE_OUTPUT_DIR", "var/inference")),
        device=_env("INFERENCE_DEVICE", "auto").lower(),
        workers=_optional_int(_env("INFERENCE_WORKERS", None)),
        queue_size=int(_env("INFERENCE_QUEUE_SIZE", "8")),
        job_timeout=float(_env("INFERENCE_JOB_TIMEOUT", "900")),
        max_voxels=int(float(_env("INFERENCE_MAX_VOXELS", "1e9"))),
        max_upload_bytes=int(float(_env("INFERENCE_MAX_UPLOAD_BYTES", str(4 * 1024**3)))),
        max_zip_members=int(_env("INFERENCE_MAX_ZIP_MEMBERS", "10000")),
        result_retention=float(_env("INFERENCE_RESULT_RETENTION", "3600")),
        lung_model_weights=_env("LUNG_MODEL_WEIGHTS", None),
        nodule_model_weights=_env("NODULE_MODEL_WEIGHTS", None),
    )
