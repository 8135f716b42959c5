"""Which models are loaded on which torch device; loading runs in the background.

Each worker is bound to one device (one worker per visible GPU by default). The CPU set
that a job falls back to after a CUDA out-of-memory error is loaded on first need.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any, Callable

import torch

from .config import Config

log = logging.getLogger(__name__)


def resolve_devices(requested: str) -> list[str]:
    """The torch devices workers run on, from INFERENCE_DEVICE (auto, cpu, cuda, cuda:N)."""
    if requested == "cpu":
        return ["cpu"]
    if requested not in ("auto", "cuda") and not requested.startswith("cuda:"):
        raise ValueError(f"INFERENCE_DEVICE must be auto, cpu, cuda or cuda:N, not {requested!r}")
    if not torch.cuda.is_available():
        if requested == "auto":
            return ["cpu"]
        raise RuntimeError(f"INFERENCE_DEVICE={requested} but CUDA is not available")
    if requested.startswith("cuda:"):
        return [requested]
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def _default_loader(settings: Config) -> dict[str, Any]:
    from .models import load_models

    return load_models(settings)


class ModelRegistry:
    def __init__(self, settings: Config):
        self.settings = settings
        self._loader: Callable[[Config], dict[str, Any]] = settings.load_models or _default_loader
        self._sets: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.error: str | None = None
        self.devices: list[str] = []

    def worker_count(self) -> int:
        return self.settings.workers or max(1, len(self.devices))

    def device_for_worker(self, index: int) -> str:
        return self.devices[index % len(self.devices)]

    def load_in_background(self) -> None:
        """Resolve devices now (cheap), load models in a thread; /readyz reports the end."""
        try:
            self.devices = resolve_devices(self.settings.device)
        except (ValueError, RuntimeError) as exc:
            self.devices, self.error = ["cpu"], str(exc)
            log.error("inference device: %s", exc)
            return
        threading.Thread(target=self._load_all, name="model-loader", daemon=True).start()

    def _load_all(self) -> None:
        try:
            for device in dict.fromkeys(self.devices):
                self.models_on(device)
            self._ready.set()
            log.info("models %s loaded on %s", sorted(self.names()), ", ".join(self.devices))
        except Exception as exc:  # any loader failure must reach /readyz, not kill a thread
            log.exception("loading the models failed")
            self.error = f"loading the models failed: {type(exc).__name__}: {exc}"

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def models_on(self, device: str) -> dict[str, Any]:
        """The model set on device, loading it on first use."""
        with self._lock:
            if device not in self._sets:
                self._sets[device] = self._loader(replace(self.settings, device=device))
            return self._sets[device]

    def names(self) -> list[str]:
        return list(self._first_set())

    def options(self, name: str) -> dict[str, tuple[float, float]]:
        """The options a job of model `name` may set: {option: (lowest, highest)}."""
        return getattr(self._first_set().get(name), "options", {})

    def _first_set(self) -> dict[str, Any]:
        with self._lock:
            return next(iter(self._sets.values()), {})

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            sets = dict(self._sets)
        rows = []
        for device, models in sets.items():
            for name, model in models.items():
                rows.append({"name": name, "kind": getattr(model, "kind", "unknown"),
                             "device": str(getattr(model, "device", device))})
        return rows
