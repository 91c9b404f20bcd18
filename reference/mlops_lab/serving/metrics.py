"""Prometheus metrics of one model server, on a registry of its own (no global state).

    curl -s 127.0.0.1:8001/metrics | grep ^mlops_

Names are shared with the alert rules in reference/observability; change both together.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = tuple(
    round(x, 2) for x in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
)


class ServerMetrics:
    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.registry = CollectorRegistry()
        self._children: dict[tuple[str, bool], tuple[Any, Any]] = {}
        r = self.registry
        self.request_latency = Histogram(
            "mlops_request_latency_seconds",
            "HTTP request latency",
            ["route", "method", "status", "variant", "model_version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "mlops_predictions_total",
            "Predictions served",
            ["variant", "model_version", "decision"],
            registry=r,
        )
        self.score = Histogram(
            "mlops_prediction_score",
            "Distribution of fraud scores",
            ["variant", "model_version"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.model_loads = Counter(
            "mlops_model_loads_total", "Successful model loads", ["variant"], registry=r
        )
        self.model_load_failures = Counter(
            "mlops_model_load_failures_total",
            "Failed model loads (the old model kept serving)",
            ["variant"],
            registry=r,
        )
        self.model_load_seconds = Histogram(
            "mlops_model_load_seconds",
            "Time to load the served model, by where it came from (cache: a version kept in memory)",
            ["variant", "source"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.rate_limited = Counter(
            "mlops_rate_limited_total",
            "Requests refused with 429 because their client was over its rate",
            ["route", "variant"],
            registry=r,
        )
        self.rate_limit_clients = Gauge(
            "mlops_rate_limit_clients", "Clients the rate limiter keeps a bucket for", ["variant"], registry=r
        )
        self.model_info = Gauge(
            "mlops_model_info", "1 for the version being served", ["variant", "model_version"], registry=r
        )
        self.store_queue_depth = Gauge(
            "mlops_store_queue_depth",
            "Predictions waiting to be written to the store",
            ["variant"],
            registry=r,
        )
        self.store_spilled_rows = Gauge(
            "mlops_store_spilled_rows",
            "Acknowledged predictions in home/spill/ that the store has not got yet "
            "(the database refused them; mlops-lab store replay-spill loads them)",
            ["variant"],
            registry=r,
        )
        self.store_drops = Counter(
            "mlops_store_drops_total",
            "Predictions refused because the store queue was full (the client got a 503, never a 200)",
            ["variant"],
            registry=r,
        )

    def observe_prediction(self, version: str, score: float, decision: bool) -> None:
        """Count and observe one prediction. Label children are cached: `.labels()` costs a
        lock and a tuple per call, which adds up on the request path."""
        key = (version, decision)
        children = self._children.get(key)
        if children is None:
            children = (
                self.predictions.labels(self.variant, version, str(decision).lower()),
                self.score.labels(self.variant, version),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(score)

    def served_version(self, version: str) -> None:
        self.model_info.clear()
        self.model_info.labels(self.variant, version).set(1)


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Awaitable[None]
]


class LatencyMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware overhead) timing every HTTP request.

    The route label is the matched route's path template, or "unmatched", so the label set
    stays bounded whatever URLs clients send.
    """

    def __init__(self, app: ASGIApp, metrics: ServerMetrics, version: Callable[[], str]) -> None:
        self.app = app
        self.metrics = metrics
        self.version = version
        self._children: dict[tuple[str, str, int, str], Any] = {}

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            key = (_route_of(scope), scope["method"], status, self.version())
            child = self._children.get(key)
            if child is None:  # cached per label set: .labels() is a lock and a lookup per call
                child = self.metrics.request_latency.labels(
                    key[0], key[1], str(status), self.metrics.variant, key[3]
                )
                self._children[key] = child
            child.observe(time.perf_counter() - start)


def _route_of(scope: MutableMapping[str, Any]) -> str:
    # The router records the matched route in the (shared) scope; its path is a template.
    return str(getattr(scope.get("route"), "path", "unmatched"))
