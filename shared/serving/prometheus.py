"""Prometheus metrics every service exposes on ``/metrics``, under the same names.

- ``hm_http_requests_total{service,route,method,status}`` and
  ``hm_http_request_seconds{service,route}``: every HTTP request by its route *template*
  (``/articles/{article_id}``, never the raw path: bounded label values).
- ``hm_http_shed_total{service}``: requests answered 503 by the load shedder.
- ``hm_served_version_info{service,slot,version}``: 1 for the version each slot serves.
- ``hm_slot_ready{service,slot}``: 1 once the slot has loaded something.

A registry per app: tests build many apps in one process.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """The shared HTTP metrics of one service, in a registry of its own."""

    def __init__(self, service: str) -> None:
        self.service = service
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "hm_http_requests_total",
            "HTTP requests by route template and status",
            ["service", "route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "hm_http_request_seconds",
            "Request latency by route template",
            ["service", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.shed = Counter("hm_http_shed_total", "Requests answered 503 by the load shedder", ["service"], registry=r)

    def count_shed(self) -> None:
        self.shed.labels(self.service).inc()

    def watch_slots(self, slots: Sequence[Any]) -> None:
        """Report the served version of each slot (read at scrape time, so always current)."""
        self.registry.register(_SlotCollector(self.service, slots))


class _SlotCollector(Collector):
    def __init__(self, service: str, slots: Sequence[Any]) -> None:
        self.service = service
        self.slots = slots

    def collect(self) -> Iterable[GaugeMetricFamily]:
        info = GaugeMetricFamily(
            "hm_served_version_info", "1 for the version each slot serves", labels=["service", "slot", "version"]
        )
        ready = GaugeMetricFamily("hm_slot_ready", "1 once the slot has loaded something", labels=["service", "slot"])
        for slot in self.slots:
            if slot.version is not None:
                info.add_metric([self.service, slot.name, str(slot.version)], 1)
            ready.add_metric([self.service, slot.name], 1 if slot.ready else 0)
        yield info
        yield ready


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = _route_label(scope.get("route"))
            service = self.metrics.service
            self.metrics.requests.labels(service, route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(service, route).observe(time.perf_counter() - started)


def _route_label(route: Any) -> str:
    if route is None:
        return "unmatched"
    path = getattr(route, "path", None)
    return path if path else "static"
