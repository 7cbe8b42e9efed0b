"""Prometheus metrics: requests and latency per endpoint, predictions per label, model version.

Per channel (label `channel`: sms, email): `spam_api_channel_*` — predictions by label, the model
version served, reloads by outcome, and whether a model serves the channel at all. The families
without a channel label count every channel together (what an SMS-only dashboard has always read).

With several worker processes (`python -m api` sets PROMETHEUS_MULTIPROC_DIR before any
worker imports prometheus_client) each worker writes its own files and /metrics adds them up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from spamfilter.config import Channel

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "spam_api_requests_total",
            "HTTP requests by endpoint, method and status code.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "spam_api_request_duration_seconds",
            "HTTP request latency by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "spam_api_predictions_total", "Predictions served by label.", ["label"], registry=self.registry
        )
        self.model_info = Gauge(
            "spam_api_model_info",
            "1 for the model version being served.",
            ["name", "version"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.reloads = Counter(
            "spam_api_model_reloads_total", "Model loads by outcome.", ["outcome"], registry=self.registry
        )
        self.log_written = Counter(
            "spam_api_prediction_log_written_total", "Prediction-log rows written.", registry=self.registry
        )
        self.log_dropped = Counter(
            "spam_api_prediction_log_dropped_total",
            "Prediction-log rows dropped because the database was unreachable too long.",
            registry=self.registry,
        )
        self.micro_batch = Histogram(
            "spam_api_micro_batch_size",
            "Single predictions scored together in one model call.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.channel_predictions = Counter(
            "spam_api_channel_predictions_total",
            "Predictions served by channel and label (HTTP and spamd).",
            ["channel", "label"],
            registry=self.registry,
        )
        self.channel_model_info = Gauge(
            "spam_api_channel_model_info",
            "1 for the model version serving each channel.",
            ["channel", "name", "version"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.channel_reloads = Counter(
            "spam_api_channel_model_reloads_total",
            "Model loads by channel and outcome.",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.channel_serving = Gauge(
            "spam_api_channel_serving",
            "1 when a model serves the channel (in every worker), 0 while none does.",
            ["channel"],
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        for label in ("spam", "ham"):
            self.predictions.labels(label)
        self._served: dict[Channel, tuple[str, str]] = {}

    def configure(self, channels: list[Channel]) -> None:
        """Start the configured channels' series at zero (not serving, nothing predicted yet)."""
        for channel in channels:
            self.channel_serving.labels(channel).set(0)
            for label in ("spam", "ham"):
                self.channel_predictions.labels(channel, label)

    def predicted(self, channel: Channel, label: str, count: int = 1) -> None:
        self.predictions.labels(label).inc(count)
        self.channel_predictions.labels(channel, label).inc(count)

    def reloaded(self, channel: Channel, ok: bool) -> None:
        outcome = "ok" if ok else "failed"
        self.reloads.labels(outcome).inc()
        self.channel_reloads.labels(channel, outcome).inc()

    def serving(self, channel: Channel, name: str, version: str) -> None:
        self.channel_serving.labels(channel).set(1)
        served = self._served.get(channel)
        if served == (name, version):
            return
        if served is not None:
            self.model_info.labels(*served).set(0)
            self.channel_model_info.labels(channel, *served).set(0)
        self.model_info.labels(name, version).set(1)
        self.channel_model_info.labels(channel, name, version).set(1)
        self._served[channel] = (name, version)

    def exposition(self) -> bytes:
        path = multiprocess_dir()
        if path is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]  # untyped in prometheus_client
        return generate_latest(registry)


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task or body copy): counts and times each request
    under its route template, so /predict/batch and /predict are separate series and unknown
    paths collapse into one."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "other"
            self.metrics.requests.labels(endpoint, scope["method"], str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
