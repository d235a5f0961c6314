"""Prometheus metrics of one server process, in a registry of its own (``GET /metrics``).

| metric | kind | what |
| --- | --- | --- |
| ``distiltune_requests_total{route,status}`` | counter | HTTP requests by route and status code |
| ``distiltune_request_duration_seconds{route}`` | histogram | time from request to response |
| ``distiltune_batch_size`` | histogram | inputs per model call |
| ``distiltune_batch_duration_seconds`` | histogram | time of one model call |
| ``distiltune_queue_depth`` | gauge | inputs waiting for a batch |
| ``distiltune_requests_in_flight`` | gauge | ``/predict`` requests accepted and not answered |
| ``distiltune_texts_total`` | counter | inputs classified (``rate()`` of it is texts/s) |
| ``distiltune_texts_per_second`` | gauge | inputs classified per second over the last 10 s |
| ``distiltune_dropped_inputs_total`` | counter | queued inputs dropped because their client went away |
| ``distiltune_rejected_requests_total{reason}`` | counter | requests refused before inference (overloaded, ...) |
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Routes reported by name; anything else is counted as "other" so unknown paths cannot blow up the label set.
ROUTES = ("/predict", "/health", "/info", "/metrics", "/docs", "/openapi.json")
RATE_WINDOW_SECONDS = 10.0


class ServingMetrics:
    def __init__(self, queue_depth: Callable[[], float], in_flight: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "distiltune_requests", "HTTP requests by route and status.", ["route", "status"], registry=self.registry
        )
        self.request_seconds = Histogram(
            "distiltune_request_duration_seconds",
            "Time from request to response.",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "distiltune_batch_size",
            "Inputs per model call.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "distiltune_batch_duration_seconds",
            "Time of one model call.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        Gauge("distiltune_queue_depth", "Inputs waiting for a batch.", registry=self.registry).set_function(
            queue_depth
        )
        Gauge(
            "distiltune_requests_in_flight", "/predict requests accepted and not yet answered.", registry=self.registry
        ).set_function(in_flight)
        self.texts = Counter("distiltune_texts", "Inputs classified.", registry=self.registry)
        Gauge(
            "distiltune_texts_per_second",
            f"Inputs classified per second over the last {RATE_WINDOW_SECONDS:g} s.",
            registry=self.registry,
        ).set_function(self.texts_per_second)
        self.dropped = Counter(
            "distiltune_dropped_inputs",
            "Queued inputs dropped because their client went away.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "distiltune_rejected_requests",
            "Requests refused before inference, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self._recent: collections.deque[tuple[float, int]] = collections.deque()

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        route = path if path in ROUTES else "other"
        self.requests.labels(route=route, status=str(status)).inc()
        self.request_seconds.labels(route=route).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        self.texts.inc(size)
        now = time.monotonic()
        self._recent.append((now, size))
        self._forget_before(now - RATE_WINDOW_SECONDS)

    def texts_per_second(self) -> float:
        self._forget_before(time.monotonic() - RATE_WINDOW_SECONDS)
        return sum(size for _, size in self._recent) / RATE_WINDOW_SECONDS

    def _forget_before(self, cutoff: float) -> None:
        while self._recent and self._recent[0][0] < cutoff:
            self._recent.popleft()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
