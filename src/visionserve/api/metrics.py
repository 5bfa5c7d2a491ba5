"""Prometheus metrics in a registry of each app's own (no global registry).

=========================================  =========  ==============================================
name                                       type       labels
=========================================  =========  ==============================================
visionserve_requests_total                 counter    route (template), method, model, status
visionserve_request_duration_seconds       histogram  route, model
visionserve_requests_in_progress           gauge      -
visionserve_queue_depth                    gauge      model: images waiting for a batch
visionserve_model_loaded                   gauge      model: 1 when loaded
visionserve_batch_size                     histogram  model: images per forward pass
visionserve_inference_seconds              histogram  model: time of each forward pass
visionserve_images_total                   counter    model: images through forward passes
=========================================  =========  ==============================================

Routes name the model they serve with :func:`tag_model`; requests that no route matched are
counted under the route ``unmatched``. gRPC calls (``--grpc-port``) are counted in the same two
metrics with the full method name as route (``/inference.GRPCInferenceService/ModelInfer``), method
``GRPC`` and the status code's name as status (``OK``, ``NOT_FOUND``, ...). Long-lived responses
(stream viewers) are counted but not timed: their duration is how long someone watched, not a latency.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from visionserve.serving.results import ModelState
from visionserve.serving.service import DetectionService

_MODEL_KEY = "visionserve.model"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256)
_INFERENCE_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


def tag_model(request: Request, model: str) -> None:
    """Record which model ``request`` is for (the ``model`` label of its request metrics)."""
    request.scope[_MODEL_KEY] = model


class _ServiceCollector(Collector):
    """Queue depth and loaded state of every model, read from the service at scrape time."""

    def __init__(self, service: Callable[[], DetectionService | None]) -> None:
        self._service = service

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("visionserve_queue_depth", "Images waiting for a batch", labels=["model"])
        loaded = GaugeMetricFamily("visionserve_model_loaded", "1 when the model is loaded", labels=["model"])
        service = self._service()
        for status in service.models() if service is not None else []:
            depth.add_metric([status.name], status.queue_depth)
            loaded.add_metric([status.name], 1.0 if status.state is ModelState.LOADED else 0.0)
        yield depth
        yield loaded


class Metrics:
    """The metrics of one app. Implements the serving layer's observer (:meth:`on_batch`).

    ``service`` returns the running service (None before start-up); queue depths and model states
    are read from it at scrape time.
    """

    def __init__(self, service: Callable[[], DetectionService | None] = lambda: None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "visionserve_requests",
            "Requests (HTTP and gRPC)",
            ["route", "method", "model", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "visionserve_request_duration_seconds",
            "Request latency (HTTP and gRPC)",
            ["route", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_progress = Gauge("visionserve_requests_in_progress", "Requests being served", registry=registry)
        self.batch_size = Histogram(
            "visionserve_batch_size", "Images per forward pass", ["model"], buckets=_BATCH_BUCKETS, registry=registry
        )
        self.inference = Histogram(
            "visionserve_inference_seconds",
            "Duration of forward passes",
            ["model"],
            buckets=_INFERENCE_BUCKETS,
            registry=registry,
        )
        self.images = Counter("visionserve_images", "Images through forward passes", ["model"], registry=registry)
        registry.register(_ServiceCollector(service))

    def on_batch(self, model: str, size: int, inference_ms: float) -> None:
        self.batch_size.labels(model).observe(size)
        self.inference.labels(model).observe(inference_ms / 1000.0)
        self.images.labels(model).inc(size)

    def observe_request(self, route: str, method: str, model: str, status: int | str, seconds: float) -> None:
        self.requests.labels(route, method, model, str(status)).inc()
        self.latency.labels(route, model).observe(seconds)

    def render(self, *extra: Collector) -> tuple[bytes, str]:
        """The exposition text (the registry's metrics, then those of ``extra``) and its content
        type. Collectors run in the calling thread: the service's must run on the event loop."""
        return generate_latest(_Chain(self.registry, *extra)), CONTENT_TYPE_LATEST


class _Chain(Collector):
    """The metrics of several collectors, in order."""

    def __init__(self, *collectors: Collector) -> None:
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def _route_of(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request by route template, model and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics, long_lived: Callable[[str], bool] = lambda path: False) -> None:
        self.app = app
        self.metrics = metrics
        self.long_lived = long_lived

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.in_progress.dec()
            model = str(scope.get(_MODEL_KEY, ""))
            elapsed = time.perf_counter() - started
            route = _route_of(scope)
            if self.long_lived(scope["path"]):
                self.metrics.requests.labels(route, scope["method"], model, str(status)).inc()
            else:
                self.metrics.observe_request(route, scope["method"], model, status, elapsed)
