"""Prometheus metrics of one app instance (its own registry, so test apps never clash)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 900)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.jobs = Counter("dss_inference_jobs", "Jobs by model and final status "
                            "(done, failed, timeout, cancelled, rejected)",
                            ["model", "status"], registry=self.registry)
        self.queue_depth = Gauge("dss_inference_queue_depth", "Jobs waiting for a worker",
                                 registry=self.registry)
        self.running = Gauge("dss_inference_running_jobs", "Jobs being processed",
                             registry=self.registry)
        self.stage_seconds = Histogram("dss_inference_stage_seconds", "Time per job stage",
                                       ["model", "stage"], buckets=STAGE_BUCKETS,
                                       registry=self.registry)
        self.registry.register(_GpuMemoryCollector())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _GpuMemoryCollector:
    """GPU memory per device, read at scrape time; nothing when CUDA is absent."""

    def collect(self):
        import torch

        if not torch.cuda.is_available():
            return
        allocated = GaugeMetricFamily("dss_inference_gpu_memory_allocated_bytes",
                                      "Memory held by tensors", labels=["device"])
        reserved = GaugeMetricFamily("dss_inference_gpu_memory_reserved_bytes",
                                     "Memory reserved by the caching allocator", labels=["device"])
        peak = GaugeMetricFamily("dss_inference_gpu_memory_peak_bytes",
                                 "Peak memory held by tensors since start", labels=["device"])
        for index in range(torch.cuda.device_count()):
            device = f"cuda:{index}"
            allocated.add_metric([device], torch.cuda.memory_allocated(index))
            reserved.add_metric([device], torch.cuda.memory_reserved(index))
            peak.add_metric([device], torch.cuda.max_memory_allocated(index))
        yield from (allocated, reserved, peak)
