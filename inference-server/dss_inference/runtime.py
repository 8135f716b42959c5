"""What one app instance holds: settings, models, the job pool and its metrics."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from .config import Config
from .imageio import convert_labels
from .imageio.formats import RESULT_FORMATS, result_format
from .jobs import Job, JobManager
from .metrics import Metrics
from .registry import ModelRegistry

EXTENSION = "dss_inference"


@dataclass
class Runtime:
    settings: Config
    registry: ModelRegistry
    jobs: JobManager
    metrics: Metrics

    @classmethod
    def start(cls, settings: Config) -> "Runtime":
        metrics = Metrics()
        registry = ModelRegistry(settings)
        registry.load_in_background()
        jobs = JobManager(settings, registry, metrics)
        jobs.start()
        return cls(settings, registry, jobs, metrics)

    def stop(self) -> None:
        self.jobs.stop()

    def result_in_format(self, job: Job, fmt: str) -> Path:
        """The job's result in another format, converted once and kept beside it."""
        suffix = RESULT_FORMATS[result_format(fmt)]
        target = job.directory / f"{job.result_stem}{suffix}"
        assert job.result_path is not None  # only a finished job's result is asked for
        if not target.exists():
            convert_labels(job.result_path, target)
        return target


def current_runtime() -> Runtime:
    return current_app.extensions[EXTENSION]
