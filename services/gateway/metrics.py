"""Prometheus metrics of the gateway's own work (cache, fallbacks, upstream calls, breakers),
registered beside the shared HTTP metrics (``shared.serving.prometheus``) in the app's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.serving.prometheus import LATENCY_BUCKETS


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.cache = Counter(
            "hm_gateway_cache_total",
            "Cache lookups: hit / miss per backend (redis|local); error = a Redis call failed",
            ["result", "backend"],
            registry=r,
        )
        self.cache_switches = Counter(
            "hm_gateway_cache_backend_switches_total",
            "Switches between Redis and the in-process cache",
            ["to"],
            registry=r,
        )
        self.redis_in_use = Gauge(
            "hm_gateway_cache_redis_in_use",
            "1 while Redis serves the cache, 0 while the in-process fallback does",
            registry=r,
        )
        self.fallbacks = Counter(
            "hm_gateway_fallbacks_total",
            "Responses served by a fallback path",
            ["route", "dependency", "fallback"],
            registry=r,
        )
        self.upstream = Histogram(
            "hm_gateway_upstream_seconds",
            "Calls to the services by outcome",
            ["dependency", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.dependency_ready = Gauge(
            "hm_gateway_dependency_ready", "1 when the dependency's /readyz is 200", ["dependency"], registry=r
        )
        self.breaker_state = Gauge(
            "hm_gateway_breaker_state", "0 closed, 1 half-open, 2 open", ["dependency"], registry=r
        )

    def observe_upstream(self, dependency: str, seconds: float, outcome: str) -> None:
        self.upstream.labels(dependency, outcome).observe(seconds)

    def cache_event(self, event: str, backend: str) -> None:
        if event == "switch":
            self.cache_switches.labels(backend).inc()
            self.redis_in_use.set(1 if backend == "redis" else 0)
        else:
            self.cache.labels(event, backend).inc()
