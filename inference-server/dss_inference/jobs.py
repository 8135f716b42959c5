"""The job pool: a bounded queue, one worker thread per device slot, time limits, cancellation.

Time limits and cancellation are cooperative: the progress callback handed to a model raises
when the job is over time or cancelled, so a model stops at its next progress report.
Every file of a job lives in INFERENCE_OUTPUT_DIR/<job id>/; finished jobs are removed
after INFERENCE_RESULT_RETENTION seconds.
"""
from __future__ import annotations

import gc
import json
import logging
import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import imageio
from .config import Config
from .errors import ApiError, image_error_status
from .imageio.exceptions import ImageInputError
from .imageio.files import remove_tree, without_paths
from .imageio.formats import RESULT_FORMATS
from .metrics import Metrics
from .registry import ModelRegistry

log = logging.getLogger(__name__)

# Share of the overall progress taken by reading before, and writing after, the model.
READ_SHARE, WRITE_SHARE = 0.05, 0.05
FINISHED = ("done", "failed", "cancelled")
# A new job's directory exists for a moment before its job is registered: spare it.
ORPHAN_MIN_AGE = 600.0


class QueueFull(ApiError):
    def __init__(self, retry_after: int):
        super().__init__(503, f"the job queue is full; retry in {retry_after} s", retry_after)


class JobStopped(Exception):
    """Raised inside a job's progress callback to stop it: cancelled or over time."""

    def __init__(self, reason: str, status: int | None):
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass
class Job:
    id: str
    model: str
    directory: Path
    source: imageio.ImageSource
    result_format: str
    result_stem: str
    options: dict[str, float] = field(default_factory=dict)   # the model's, checked
    status: str = "queued"  # queued, running, done, failed, cancelled
    stage: str = "queued"
    progress: float = 0.0
    error: str | None = None
    error_status: int | None = None
    result_path: Path | None = None
    report: dict | None = None
    device: str | None = None
    submitted_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    def summary(self) -> dict[str, Any]:
        body = {"status": self.status, "stage": self.stage, "progress": round(self.progress, 4),
                "model": self.model}
        if self.error:
            body["error"] = self.error
        return body


class JobManager:
    def __init__(self, settings: Config, registry: ModelRegistry, metrics: Metrics):
        self.settings, self.registry, self.metrics = settings, registry, metrics
        self.output_dir = Path(settings.output_dir).resolve()
        self._jobs: dict[str, Job] = {}
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._seconds_per_job = 30.0  # moving average, for Retry-After
        self.metrics.queue_depth.set_function(lambda: len(self._waiting))

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_directories()
        for index in range(self.registry.worker_count()):
            threading.Thread(target=self._work, args=(index,), name=f"inference-worker-{index}",
                             daemon=True).start()
        threading.Thread(target=self._sweep_forever, name="inference-janitor", daemon=True).start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for job in list(self._jobs.values()):
            job.cancel_requested.set()

    # -- requests ----------------------------------------------------------------------------
    def check_capacity(self, model: str) -> None:
        """QueueFull (counted as a rejected job) when no job can wait now."""
        try:
            self._check_capacity()
        except QueueFull:
            self.metrics.jobs.labels(model, "rejected").inc()
            raise

    def new_job_directory(self) -> tuple[str, Path]:
        """A fresh job id and its directory."""
        job_id = uuid.uuid4().hex
        directory = self.output_dir / job_id
        directory.mkdir(parents=True)
        return job_id, directory

    def submit(self, job: Job) -> Job:
        with self._cond:
            try:
                self.check_capacity(job.model)
            except QueueFull:
                remove_tree(job.directory)
                raise
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._cond.notify()
        log.info("job %s (%s) queued", job.id, job.model)
        return job

    def get(self, job_id: str, model: str) -> Job | None:
        job = self._jobs.get(job_id)
        return job if job is not None and job.model == model else None

    def cancel(self, job: Job) -> None:
        """Stop a queued or running job, or discard a finished one with its files."""
        with self._cond:
            if job.status == "queued":
                self._waiting.remove(job)
                self._finish(job, "cancelled", "cancelled", error="the job was cancelled")
            elif job.status == "running":
                job.cancel_requested.set()
            else:
                self._jobs.pop(job.id, None)
                remove_tree(job.directory)

    def _check_capacity(self) -> None:
        if len(self._waiting) >= self.settings.queue_size:
            workers = self.registry.worker_count()
            retry = math.ceil(self._seconds_per_job * (1 + len(self._waiting) / workers) / 2)
            raise QueueFull(min(max(retry, 1), 600))

    # -- workers -----------------------------------------------------------------------------
    def _work(self, index: int) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._waiting.popleft()
                job.status, job.stage = "running", "starting"
            self.metrics.stage_seconds.labels(job.model, "queued").observe(
                time.time() - job.submitted_at)
            self.metrics.running.inc()
            try:
                self._run(job, self.registry.device_for_worker(index))
            finally:
                self.metrics.running.dec()

    def _run(self, job: Job, device: str) -> None:
        started = time.monotonic()
        tracker = _StageTracker(job, self.metrics, started, self.settings.job_timeout)
        try:
            tracker.report("read", 0.0)
            volume = imageio.read_volume(job.source)
            result = self._run_model(job, device, volume, tracker)
            tracker.report("write", 1.0 - WRITE_SHARE)
            self._store_result(job, volume, result)
            tracker.close()
            self._finish(job, "done", "done")
        except JobStopped as stop:
            tracker.close()
            if stop.status is None:
                self._finish(job, "cancelled", "cancelled", error=stop.reason)
            else:
                self._finish(job, "failed", "timeout", error=stop.reason, http_status=stop.status)
        except ImageInputError as exc:
            tracker.close()
            self._finish(job, "failed", "failed", error=exc.reason,
                         http_status=image_error_status(exc))
        except Exception as exc:  # a model bug must fail the job, never the worker
            tracker.close()
            log.exception("job %s (%s) failed", job.id, job.model)
            self._finish(job, "failed", "failed", http_status=500,
                         error=without_paths(
                             f"{job.model} failed: {type(exc).__name__}: {exc}")[:500])
        self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * (time.monotonic() - started)

    def _run_model(self, job: Job, device: str, volume: imageio.Volume, tracker: "_StageTracker"):
        job.device = device
        model = self.registry.models_on(device)[job.model]
        try:
            return model.run(volume, tracker.model_progress, **job.options)
        except Exception as exc:
            if not _is_cuda_oom(exc):
                raise
        _free_cuda_memory()
        log.warning("job %s ran out of GPU memory on %s; retrying on the CPU", job.id, device)
        job.device = "cpu"
        tracker.report("retry on cpu", READ_SHARE)
        try:
            return self.registry.models_on("cpu")[job.model].run(volume, tracker.model_progress,
                                                                 **job.options)
        except Exception as exc:
            if not (_is_cuda_oom(exc) or isinstance(exc, MemoryError)):
                raise
            raise RuntimeError(f"out of GPU memory on {device}, and the retry on the CPU ran "
                               "out of memory too") from None

    def _store_result(self, job: Job, volume: imageio.Volume, result) -> None:
        labels = np.asarray(result.labels)
        if labels.dtype not in (np.uint8, np.uint16) or labels.shape != volume.shape:
            raise TypeError(f"the model returned labels {labels.dtype} {labels.shape}, "
                            f"expected uint8/uint16 {volume.shape}")
        # Round trip now, so a report that is not JSON fails the job rather than the GET.
        report = json.loads(json.dumps(result.report, default=_plain_json))
        suffix = RESULT_FORMATS[job.result_format]
        job.result_path = imageio.write_labels(labels, volume,
                                               job.directory / f"{job.result_stem}{suffix}")
        (job.directory / "report.json").write_text(json.dumps(report))
        job.report = report

    def _finish(self, job: Job, state: str, metric_status: str, error: str | None = None,
                http_status: int | None = None) -> None:
        """Record a job's end; its status changes last, when everything else is in place."""
        job.error, job.error_status = error, http_status
        self._remove_inputs(job)
        if state == "cancelled":
            remove_tree(job.directory)
        self.metrics.jobs.labels(job.model, metric_status).inc()
        log.info("job %s (%s on %s) %s%s", job.id, job.model, job.device or "no device",
                 metric_status, f": {error}" if error else "")
        if state == "done":
            job.progress = 1.0
        job.finished_at = time.time()
        job.stage = job.status = state

    @staticmethod
    def _remove_inputs(job: Job) -> None:
        """Inputs are not needed once a job ends; the result and report stay."""
        if not job.directory.exists():
            return
        for path in job.directory.iterdir():
            if path.name == "dicom":
                remove_tree(path)
            elif path.name.startswith("input"):
                path.unlink(missing_ok=True)

    # -- retention ---------------------------------------------------------------------------
    def sweep(self, now: float | None = None) -> int:
        """Forget finished jobs older than the retention time and delete their files."""
        now = time.time() if now is None else now
        expired = [job for job in list(self._jobs.values())
                   if job.status in FINISHED and job.finished_at is not None
                   and now - job.finished_at > self.settings.result_retention]
        for job in expired:
            self._jobs.pop(job.id, None)
            remove_tree(job.directory)
        self._remove_stale_directories(now)
        return len(expired)

    def _sweep_forever(self) -> None:
        interval = min(60.0, max(self.settings.result_retention / 4, 0.5))
        while not self._stopping:
            time.sleep(interval)
            self.sweep()

    def _remove_stale_directories(self, now: float | None = None) -> None:
        """Job directories no job of this process owns (a previous process left them), once
        past the retention time, and never younger than an upload takes to be checked."""
        age = max(self.settings.result_retention, ORPHAN_MIN_AGE)
        cutoff = (time.time() if now is None else now) - age
        for path in self.output_dir.iterdir():
            if _is_job_id(path.name) and path.name not in self._jobs and path.is_dir() \
                    and path.stat().st_mtime < cutoff:
                remove_tree(path)


class _StageTracker:
    """Progress, stage timing and the cooperative stop checks of one running job."""

    def __init__(self, job: Job, metrics: Metrics, started: float, time_limit: float):
        self.job, self.metrics = job, metrics
        self.time_limit, self.deadline = time_limit, started + time_limit
        self._stage: str | None = None
        self._stage_started = time.monotonic()

    def report(self, stage: str, overall: float) -> None:
        self._check()
        if stage != self._stage:
            self._observe()
            self._stage, self._stage_started = stage, time.monotonic()
            self.job.stage = stage
        self.job.progress = max(self.job.progress, min(max(overall, 0.0), 1.0))

    def model_progress(self, stage: str, fraction: float) -> None:
        """The callback models get: fraction is of the model's own work, 0..1."""
        self.report(str(stage), READ_SHARE + (1 - READ_SHARE - WRITE_SHARE) * float(fraction))

    def close(self) -> None:
        self._observe()
        self._stage = None

    def _observe(self) -> None:
        if self._stage is not None:
            self.metrics.stage_seconds.labels(self.job.model, self._stage).observe(
                time.monotonic() - self._stage_started)

    def _check(self) -> None:
        if self.job.cancel_requested.is_set():
            raise JobStopped("the job was cancelled", None)
        if time.monotonic() > self.deadline:
            raise JobStopped(f"the job exceeded its time limit of {self.time_limit:g} s "
                             "(INFERENCE_JOB_TIMEOUT)", 504)


def _is_cuda_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc))


def _free_cuda_memory() -> None:
    """Drop what the failed attempt left: tensors caught in reference cycles, then the cache."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def _plain_json(value):
    """numpy scalars and arrays in a model's report, as plain JSON numbers and lists."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"a {type(value).__name__} in the model's report is not JSON")


def _is_job_id(name: str) -> bool:
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)
