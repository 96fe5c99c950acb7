"""Prometheus metrics of one server app, in its own registry (tests create several apps).

Requests are labelled by route template (never by raw path, which a client controls), method
and status; batches by size, so the effect of micro-batching can be read off `/metrics`.

With `serve --workers N` every worker process records into files under
$PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode, which the parent sets before
starting the workers), and `/metrics`, whichever worker answers it, adds up all of them.
Gauges say how they combine: requests in flight and queued are summed over live workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED_ROUTE = "unmatched"  # label for paths no route serves (404s)
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # set: workers share metrics through files

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ServerMetrics:
    """The server's counters and histograms, and their Prometheus text rendering."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, max_batch: int) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "deepspeech_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "deepspeech_http_request_duration_seconds",
            "Time from request start to the end of the response, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "deepspeech_batch_size",
            "Utterances per onnxruntime call (micro-batching).",
            buckets=sorted({1, 2, 4, 8, 16, 32, 64, max_batch}),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "deepspeech_batch_inference_seconds",
            "Time of one onnxruntime call plus greedy decoding.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "deepspeech_audio_seconds",
            "Seconds of audio transcribed.",
            registry=self.registry,
        )
        live = self._live_gauge
        self.queued = live("deepspeech_queued_requests", "Requests waiting for a batch.")
        self.in_flight = live(
            "deepspeech_requests_in_flight", "Transcription requests admitted and not yet answered."
        )
        self.workers = live("deepspeech_workers", "Server processes with a loaded model.")
        self.refused = Counter(
            "deepspeech_refused_requests",
            "Transcription requests refused with 503 before their body was read, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "deepspeech_dropped_requests",
            "Admitted requests dropped before an answer (client disconnected, time limit).",
            ["reason"],
            registry=self.registry,
        )
        self.batcher_failures = Counter(
            "deepspeech_batcher_failures",
            "Times the batching loop failed and was restarted.",
            registry=self.registry,
        )

    def _live_gauge(self, name: str, documentation: str) -> Gauge:
        """A gauge of what is live now: with worker processes, their values are summed."""
        return Gauge(name, documentation, registry=self.registry, multiprocess_mode="livesum")

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        """Prometheus text: this process's metrics, or every worker's added up."""
        if os.environ.get(MULTIPROCESS_DIR_ENV):
            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)
            return generate_latest(combined)
        return generate_latest(self.registry)


def mark_worker_stopped(pid: int) -> None:
    """Drop a stopped worker's live gauges from the shared files (multiprocess mode only)."""
    if os.environ.get(MULTIPROCESS_DIR_ENV):
        multiprocess.mark_process_dead(pid)


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP response by route template and status.

    Pure ASGI (not BaseHTTPMiddleware) so request bodies stream through untouched and the
    route the router matched is visible in the scope afterwards.
    """

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before responding

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or UNMATCHED_ROUTE
            self.metrics.requests.labels(label, scope["method"], str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - start)
