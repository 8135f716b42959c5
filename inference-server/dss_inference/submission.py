"""Turning an uploaded file into a queued job: every check that can answer at once does."""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from .errors import ApiError
from .imageio import formats, inspect_input
from .imageio.files import remove_tree
from .jobs import Job, JobManager
from .registry import ModelRegistry

MODELS_LOADING_RETRY_AFTER = 5
NOT_OPTIONS = ("format", "itk_image")   # the request's own fields


def check_accepting(manager: JobManager, registry: ModelRegistry, model: str) -> None:
    """Refuse before the upload is read: unknown model, models loading, queue full."""
    _check_model(registry, model)
    manager.check_capacity(model)


def submit_upload(manager: JobManager, registry: ModelRegistry, model: str,
                  upload: FileStorage | None, result_format: str | None,
                  fields: Mapping[str, str]) -> Job:
    """`fields`: the request's form fields and query parameters, the model's options among
    them."""
    _check_model(registry, model)
    result_format = formats.result_format(result_format)
    if upload is None or not upload.filename:
        raise ApiError(400, "send the image as the multipart file field 'itk_image'")
    options = model_options(registry.options(model), model, fields)
    fmt = formats.input_format(upload.filename)
    job_id, directory = manager.new_job_directory()
    try:
        path = directory / f"input{formats.upload_suffix(fmt)}"
        upload.save(path)
        settings = manager.settings
        source = inspect_input(path, fmt, directory, settings.max_voxels,
                                       settings.max_zip_members)
    except BaseException:
        remove_tree(directory)
        raise
    job = Job(id=job_id, model=model, directory=directory, source=source,
              result_format=result_format, result_stem=result_stem(upload.filename, model),
              options=options)
    return manager.submit(job)


def model_options(declared: dict[str, tuple[float, float]], model: str,
                  fields: Mapping[str, str]) -> dict[str, float]:
    """The options among `fields`, each one `declared` by the model and in its range."""
    options = {}
    for name, text in fields.items():
        if name in NOT_OPTIONS:
            continue
        if name not in declared:
            raise ApiError(400, f"unknown option {name[:100]!r} for model {model!r}; accepted: "
                                f"{', '.join(declared) or 'none'}")
        low, high = declared[name]
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:   # NaN and infinities too
            raise ApiError(400, f"option {name!r}: expected a number from {low:g} to {high:g}, "
                                f"got {text[:100]!r}")
        options[name] = value
    return options


def result_stem(upload_name: str, model: str) -> str:
    """The result's file name without suffix: the input's name, made safe, plus the model."""
    name = Path(secure_filename(upload_name) or "image").name
    for suffix in sorted(formats.INPUT_FORMATS, key=len, reverse=True):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return f"{name or 'image'}_{model}"


def _check_model(registry: ModelRegistry, model: str) -> None:
    if registry.error:
        raise ApiError(503, registry.error)
    if not registry.ready:
        raise ApiError(503, "the models are still loading", MODELS_LOADING_RETRY_AFTER)
    if model not in registry.names():
        raise ApiError(404, f"unknown model {model!r}; available: {', '.join(registry.names())}")

