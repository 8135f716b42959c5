"""What the service runs, whether it is alive and ready, and its metrics."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST

from ..runtime import current_runtime

bp = Blueprint("service", __name__)


@bp.get("/models")
def models():
    runtime = current_runtime()
    return jsonify({"models": runtime.registry.describe(), "devices": runtime.registry.devices,
                    "ready": runtime.registry.ready, "error": runtime.registry.error,
                    "versions": _versions()})


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    registry = current_runtime().registry
    if registry.ready:
        return jsonify({"status": "ready", "models": registry.names()})
    if registry.error:
        return jsonify({"status": "error", "error": registry.error}), 503
    return jsonify({"status": "loading"}), 503


@bp.get("/metrics")
def metrics():
    return Response(current_runtime().metrics.exposition(), mimetype=CONTENT_TYPE_LATEST)


def _versions() -> dict[str, str]:
    import numpy
    import SimpleITK
    import torch

    versions = {"torch": torch.__version__, "SimpleITK": SimpleITK.Version_VersionString(),
                "numpy": numpy.__version__, "cuda": torch.version.cuda or "none"}
    try:
        versions["dss_inference"] = version("dss-inference")
    except PackageNotFoundError:
        pass
    return versions
