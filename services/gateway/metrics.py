"""Prometheus metrics of the gateway, in a registry per app (tests build many apps)."""
from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("hm_gateway_requests_total", "HTTP requests by route template and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("hm_gateway_request_seconds", "Request latency by route template",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.cache = Counter("hm_gateway_cache_total", "Cache lookups: hit / miss per backend (redis|local); "
                             "error = a Redis call failed", ["result", "backend"], registry=r)
        self.cache_switches = Counter("hm_gateway_cache_backend_switches_total",
                                      "Switches between Redis and the in-process cache", ["to"], registry=r)
        self.redis_in_use = Gauge("hm_gateway_cache_redis_in_use", "1 while Redis serves the cache, 0 while the "
                                  "in-process fallback does", registry=r)
        self.fallbacks = Counter("hm_gateway_fallbacks_total", "Responses served by a fallback path",
                                 ["route", "dependency", "fallback"], registry=r)
        self.upstream = Histogram("hm_gateway_upstream_seconds", "Calls to the services by outcome",
                                  ["dependency", "outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.dependency_ready = Gauge("hm_gateway_dependency_ready", "1 when the dependency's /readyz is 200",
                                      ["dependency"], registry=r)
        self.breaker_state = Gauge("hm_gateway_breaker_state", "0 closed, 1 half-open, 2 open",
                                   ["dependency"], registry=r)

    def observe_upstream(self, dependency: str, seconds: float, outcome: str) -> None:
        self.upstream.labels(dependency, outcome).observe(seconds)

    def cache_event(self, event: str, backend: str) -> None:
        if event == "switch":
            self.cache_switches.labels(backend).inc()
            self.redis_in_use.set(1 if backend == "redis" else 0)
        else:
            self.cache.labels(event, backend).inc()


class MetricsMiddleware:
    """Counts and times every HTTP request by its route *template* (bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
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
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)


def _route_label(route: Any) -> str:
    if route is None:
        return "unmatched"
    path = getattr(route, "path", None)
    return path if path else "static"
