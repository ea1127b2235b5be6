"""Prometheus metrics of one app instance (its own registry, so several apps can coexist in tests)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "heal_swin_http_requests",
            "HTTP requests by route template and status code",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "heal_swin_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "heal_swin_batch_size",
            "Samples per onnxruntime run (micro-batch size)",
            ["model"],
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128),
            registry=r,
        )
        self.inference = Histogram(
            "heal_swin_inference_duration_seconds",
            "onnxruntime run time per batch",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ready = Gauge(
            "heal_swin_model_ready", "1 when the model is loaded and warmed up", ["model"], registry=r
        )
        self.errors = Counter(
            "heal_swin_request_errors", "Rejected requests by error kind", ["kind"], registry=r
        )

    def watch_memory(self, rss: Callable[[], int], caches: Callable[[], int | None]) -> None:
        """Gauges read at scrape time: the process's resident bytes and the caches' bytes."""
        Gauge(
            "heal_swin_process_resident_bytes", "Resident set size of this process", registry=self.registry
        ).set_function(rss)
        Gauge(
            "heal_swin_cache_bytes",
            "Bytes held by the byte-bounded caches (-1: entry-counted)",
            registry=self.registry,
        ).set_function(lambda: float(-1 if (n := caches()) is None else n))

    def observe_batch(self, model: str, size: int, seconds: float) -> None:
        self.batch_size.labels(model).observe(size)
        self.inference.labels(model).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
