"""``POST /events`` (view, click, cart, purchase) and the session view ``/recommend`` reads.

The store (``services.gateway.event_store.EventStore``: Redis Stream + per-session lists, a bounded local
buffer while Redis is away) is built in the gateway's lifespan by :func:`start_events` and
kept on ``app.state.events``. Settings: ``HM_EVENTS_*`` (the prefix is shared with
``hmrec events drain``); Redis is the gateway's own ``HM_GATEWAY_REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.gateway.event_store import (
    BufferFull,
    EventBatch,
    EventStore,
    EventStoreConfig,
    SessionEvent,
    check_time,
    encode_event,
    session_digest,
    session_key,
    weighted_articles,
)


class EventSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HM_EVENTS_", extra="ignore")

    prefix: str = "hm:ev"
    stream_maxlen: int = Field(1_000_000, ge=1000)
    session_len: int = Field(50, ge=1, le=500)
    session_ttl_s: int = Field(7 * 86400, ge=60)
    buffer_max: int = Field(100_000, ge=100)
    flush_interval_s: float = Field(1.0, gt=0)


class EventsAccepted(BaseModel):
    accepted: int
    stored: str = Field(description="'redis', or 'buffered' (Redis away: kept here, written when it is back)")


router = APIRouter(tags=["events"])


def _store(request: Request) -> EventStore:
    return request.app.state.events


@router.post(
    "/events",
    status_code=202,
    response_model=EventsAccepted,
    responses={
        422: {"description": "Unknown article or type, bad id, timestamp in the future, more than 100 events"},
        503: {"description": "Redis away and the local buffer full: retry later"},
    },
)
async def post_events(batch: EventBatch, request: Request) -> Any:
    """Record up to 100 events. Each names ``customer_id`` or an anonymous ``session_id``; the
    next ``/recommend`` of that customer or session reflects them."""
    catalogue = request.app.state.gateway.catalogue
    now = time.time()
    problems = []
    for i, event in enumerate(batch.events):
        if event.article_id not in catalogue:
            problems.append({"loc": ["body", "events", i, "article_id"], "msg": f"no article {event.article_id}"})
        why = check_time(event.ts, now)
        if why:
            problems.append({"loc": ["body", "events", i, "ts"], "msg": why})
    if problems:
        raise HTTPException(422, detail=problems)
    store = _store(request)
    try:
        stored = await store.append([encode_event(e, now) for e in batch.events])
    except BufferFull as exc:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "2"})
    return {"accepted": len(batch.events), "stored": stored}


def _metrics(registry: Any, store_ref: list[EventStore]) -> Callable[[str, int], None]:
    counter = Counter(
        "hm_gateway_events_total",
        "Events: accepted, buffered (Redis away), written "
        "(to Redis, buffered ones included when flushed), dropped (refused: buffer full)",
        ["outcome"],
        registry=registry,
    )
    gauge = Gauge("hm_gateway_events_buffered_now", "Events waiting in the local buffer", registry=registry)
    gauge.set_function(lambda: len(store_ref[0].buffer) if store_ref else 0)
    for outcome in ("accepted", "buffered", "written", "dropped"):
        counter.labels(outcome)
    return lambda outcome, n: counter.labels(outcome).inc(n)


async def start_events(app: FastAPI, redis_url: str, registry: Any) -> Callable[[], Awaitable[None]]:
    """Build the store on ``app.state.events``; returns the coroutine that stops it."""
    settings = EventSettings()
    ref: list[EventStore] = []
    store = EventStore(
        EventStoreConfig(
            redis_url=redis_url,
            prefix=settings.prefix,
            stream_maxlen=settings.stream_maxlen,
            session_len=settings.session_len,
            session_ttl_s=settings.session_ttl_s,
            buffer_max=settings.buffer_max,
        ),
        on_count=_metrics(registry, ref),
    )
    ref.append(store)
    await store.ensure_group()
    app.state.events = store
    flusher = asyncio.create_task(store.flush_loop(settings.flush_interval_s))

    async def stop() -> None:
        flusher.cancel()
        with suppress(asyncio.CancelledError):
            await flusher
        await store.flush()
        await store.close()

    return stop


@dataclass
class SessionView:
    """What ``/recommend`` takes from a session: stage one's seeds and the cache key's part."""

    key: str
    events: list[SessionEvent] = field(default_factory=list)
    now: float = field(default_factory=time.time)

    @property
    def digest(self) -> str:
        return session_digest(self.events)

    @property
    def recent_article_ids(self) -> list[str]:
        return weighted_articles(self.events, self.now)

    def candidate_fields(self) -> dict[str, Any]:
        seeds = self.recent_article_ids
        return {"recent_article_ids": seeds} if seeds else {}

    def summary(self) -> dict[str, Any] | None:
        """The response's ``session``: what the feed was given ("because you viewed ...")."""
        if not self.events:
            return None
        counts = {t: sum(e.type == t for e in self.events) for t in ("view", "click", "cart", "purchase")}
        return {"events": len(self.events), "counts": counts, "because": self.recent_article_ids[:3]}


async def session_view(request: Request, customer_id: str | None, session_id: str | None) -> SessionView:
    """The session of this /recommend (``session_id`` wins over ``customer_id``)."""
    key = session_key(customer_id, session_id)
    store: EventStore | None = getattr(request.app.state, "events", None)
    events = await store.recent(key) if store is not None else []
    return SessionView(key, events)
