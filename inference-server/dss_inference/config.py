"""Every setting of the inference server, read from the environment here and nowhere else."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


class ConfigError(ValueError):
    """A setting cannot work; the message names it and says why."""


def _env(name: str, default: str | None, parse: Callable[[str], Any] = str) -> Any:
    """The variable's value parsed, or the default when unset or empty (compose passes "")."""
    value = os.environ.get(name)
    if value in (None, ""):
        value = default
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a valid {parse.__name__.strip('_')}") from None


def _integer(text: str) -> int:
    """Integers, also written as 1e9."""
    number = float(text)
    if not number.is_integer():
        raise ValueError(text)
    return int(number)


def _flag(text: str) -> bool:
    """The words the web server and the dispatcher take too."""
    if text.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if text.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


@dataclass(frozen=True)
class Config:
    port: int = 8081
    output_dir: Path = Path("var/inference")
    # "auto", "cpu" or "cuda" as configured; create_app hands the models a resolved
    # torch device ("cpu", "cuda:0", ...) in this same field.
    device: str = "auto"
    # None: one per visible GPU when running on CUDA, else 1.
    workers: int | None = None
    queue_size: int = 8
    job_timeout: float = 900.0
    # The models peak at about 17 bytes of memory per input voxel (imageio.headers.BYTES_PER_VOXEL):
    # 3e8 voxels (512 x 512 x 1144) need about 5 GB; 1e9 would have needed 17 GB.
    max_voxels: int = 300_000_000
    max_upload_bytes: int = 4 * 1024**3
    max_zip_members: int = 10_000
    result_retention: float = 3600.0
    lung_model_weights: str | None = None
    nodule_model_weights: str | None = None
    log_json: bool = False
    # Tests inject a loader here; None means dss_inference.models.load_models.
    load_models: Callable[["Config"], dict[str, Any]] | None = field(default=None, compare=False)

    def __post_init__(self):
        at_least = {"workers": 1, "queue_size": 0, "max_voxels": 1, "max_upload_bytes": 1,
                    "max_zip_members": 1, "job_timeout": 1e-3, "result_retention": 0}
        for name, minimum in at_least.items():
            value = getattr(self, name)
            if value is not None and value < minimum:
                raise ConfigError(f"setting {name} must be at least {minimum}, not {value}")


def load_config() -> Config:
    return Config(
        port=_env("INFERENCE_PORT", "8081", _integer),
        output_dir=_env("INFERENCE_OUTPUT_DIR", "var/inference", Path),
        device=_env("INFERENCE_DEVICE", "auto").lower(),
        workers=_env("INFERENCE_WORKERS", None, _integer),
        queue_size=_env("INFERENCE_QUEUE_SIZE", "8", _integer),
        job_timeout=_env("INFERENCE_JOB_TIMEOUT", "900", float),
        max_voxels=_env("INFERENCE_MAX_VOXELS", "3e8", _integer),
        max_upload_bytes=_env("INFERENCE_MAX_UPLOAD_BYTES", str(4 * 1024**3), _integer),
        max_zip_members=_env("INFERENCE_MAX_ZIP_MEMBERS", "10000", _integer),
        result_retention=_env("INFERENCE_RESULT_RETENTION", "3600", float),
        lung_model_weights=_env("LUNG_MODEL_WEIGHTS", None),
        nodule_model_weights=_env("NODULE_MODEL_WEIGHTS", None),
        log_json=_env("DSS_LOG_JSON", "0", _flag),
    )
