"""Turning an uploaded file into a queued job: every check that can answer at once does."""
from __future__ import annotations

from pathlib import Path

from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from . import imageio
from .errors import ApiError
from .jobs import Job, JobManager
from .registry import ModelRegistry

MODELS_LOADING_RETRY_AFTER = 5


def check_accepting(manager: JobManager, registry: ModelRegistry, model: str) -> None:
    """Refuse before the upload is read: unknown model, models loading, queue full."""
    _check_model(registry, model)
    manager.check_capacity(model)


def submit_upload(manager: JobManager, registry: ModelRegistry, model: str,
                  upload: FileStorage | None, result_format: str | None) -> Job:
    _check_model(registry, model)
    result_format = imageio.result_format(result_format)
    if upload is None or not upload.filename:
        raise ApiError(400, "send the image as the multipart file field 'itk_image'")
    fmt = imageio.input_format(upload.filename)
    job_id, directory = manager.new_job_directory()
    try:
        path = directory / f"input{imageio.upload_suffix(fmt)}"
        upload.save(path)
        settings = manager.settings
        source = imageio.inspect_input(path, fmt, directory, settings.max_voxels,
                                       settings.max_zip_members)
    except BaseException:
        imageio.remove_tree(directory)
        raise
    job = Job(id=job_id, model=model, directory=directory, source=source,
              result_format=result_format, result_stem=result_stem(upload.filename, model))
    return manager.submit(job)


def result_stem(upload_name: str, model: str) -> str:
    """The result's file name without suffix: the input's name, made safe, plus the model."""
    name = Path(secure_filename(upload_name) or "image").name
    for suffix in sorted(imageio.INPUT_FORMATS, key=len, reverse=True):
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

