"""Everything a gateway request needs, built once in the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from services.gateway.breaker import STATE_CODES, CircuitBreaker
from services.gateway.cache import ResultCache
from services.gateway.catalogue import Catalogue, load_catalogue
from services.gateway.clients import ServiceClient, make_session
from services.gateway.metrics import GatewayMetrics
from services.gateway.settings import GatewaySettings

log = logging.getLogger("services.gateway")

DEPENDENCIES = ("candidate", "ranker", "search")


@dataclass
class GatewayState:
    settings: GatewaySettings
    catalogue: Catalogue
    cache: ResultCache
    clients: dict[str, ServiceClient]
    metrics: GatewayMetrics
    session: aiohttp.ClientSession
    # Latest model/index version each service reported (readiness poll or a response).
    versions: dict[str, str | None] = field(default_factory=lambda: dict.fromkeys(DEPENDENCIES))
    dependencies: dict[str, dict[str, Any]] = field(default_factory=dict)
    _last_fallback_log: dict[str, float] = field(default_factory=dict)

    def note_version(self, dependency: str, version: str | None) -> str | None:
        if version:
            self.versions[dependency] = str(version)
        return self.versions[dependency]

    def log_fallback(self, dependency: str, exc: Exception) -> None:
        """Log a fallback at most every 5 s per dependency (a dead service must not flood logs)."""
        now = time.monotonic()
        if now - self._last_fallback_log.get(dependency, -1e9) >= 5.0:
            self._last_fallback_log[dependency] = now
            log.warning("%s failed, serving a fallback: %s", dependency, exc)

    async def refresh_health(self) -> None:
        """Poll every dependency's /readyz (versions, readiness) and probe Redis."""
        timeout = self.settings.health_timeout_s
        results = await asyncio.gather(*(self.clients[d].readiness(timeout) for d in DEPENDENCIES))
        for name, (ready, body) in zip(DEPENDENCIES, results, strict=True):
            version = body.get("model_version") or body.get("index_version") or body.get("version")
            if ready:
                self.note_version(name, version)
            breaker = self.clients[name].breaker
            self.dependencies[name] = {
                "ready": ready,
                "model_version": version if ready else self.versions.get(name),
                "breaker": breaker.state,
                "url": self.clients[name].base_url,
                # What the page's /status reads: a part still warming up, the ranker's ordering.
                **{k: body[k] for k in ("warming", "ordering") if ready and k in body},
                **({} if ready else {"detail": body.get("error") or body.get("detail") or body}),
            }
            self.metrics.dependency_ready.labels(name).set(1 if ready else 0)
            self.metrics.breaker_state.labels(name).set(STATE_CODES[breaker.state])
        await self.cache.probe()
        self.metrics.redis_in_use.set(1 if self.cache.state()["backend"] == "redis" else 0)

    async def health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval_s)
            try:
                await self.refresh_health()
            except Exception:  # the loop must outlive any one bad poll
                log.exception("health poll failed")

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        deps = {
            name: dict(
                self.dependencies.get(name, {"ready": False}),
                breaker=self.clients[name].breaker.state,
                replicas=self.clients[name].replica_state(),
            )
            for name in DEPENDENCIES
        }
        ready = all(d["ready"] for d in deps.values())
        return ready, {
            "dependencies": deps,
            "cache": self.cache.state(),
            "catalogue": {
                "version": self.catalogue.version,
                "articles": len(self.catalogue.article_ids),
                "customers": len(self.catalogue.customer_ids),
            },
        }


def _clients(
    settings: GatewaySettings, session: aiohttp.ClientSession, metrics: GatewayMetrics
) -> dict[str, ServiceClient]:
    urls = {"candidate": settings.candidate_url, "ranker": settings.ranker_url, "search": settings.search_url}
    timeouts = {
        "candidate": settings.candidate_timeout_s,
        "ranker": settings.ranker_timeout_s,
        "search": settings.search_timeout_s,
    }
    return {
        name: ServiceClient(
            name,
            urls[name],
            session,
            CircuitBreaker(name, settings.breaker_failure_threshold, settings.breaker_reset_s),
            timeouts[name],
            settings.connect_timeout_s,
            metrics.observe_upstream,
        )
        for name in DEPENDENCIES
    }


async def build_state(
    settings: GatewaySettings, metrics: GatewayMetrics, catalogue: Catalogue | None = None
) -> GatewayState:
    """Everything the gateway serves with: the catalogue (loaded off the event loop unless
    given ready-made, as tests do), one HTTP session and a client per dependency, the cache,
    and a first health poll."""
    cat = (
        catalogue
        if catalogue is not None
        else await asyncio.to_thread(
            load_catalogue,
            settings.data_dir,
            settings.output_dir / "data",
            settings.popular_weeks,
            settings.popular_per_band,
        )
    )
    session = make_session()
    cache = ResultCache(
        settings.redis_url,
        settings.cache_ttl_s,
        settings.redis_socket_timeout_s,
        settings.redis_retry_interval_s,
        settings.local_cache_max_entries,
        metrics.cache_event,
    )
    state = GatewayState(settings, cat, cache, _clients(settings, session, metrics), metrics, session)
    await state.refresh_health()
    return state


async def close_state(state: GatewayState) -> None:
    await state.session.close()
    await state.cache.close()
