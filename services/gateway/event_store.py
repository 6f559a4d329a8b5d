"""Browsing events (view, click, cart, purchase): their schema, where they are kept, and how a
session's recent events become the ``recent_article_ids`` of stage one.

Storage, on real parts (docs/events.md):

- every accepted event is appended to one Redis Stream (``<prefix>:stream``, capped at
  ``stream_maxlen`` entries, read by the ``drain`` consumer group that writes parquet);
- each session (a customer, or an anonymous ``session_id``) has a short list of its newest
  events (``<prefix>:session:<key>``, ``session_len`` entries, expiring after ``session_ttl_s``)
  that ``/recommend`` reads;
- when Redis does not answer, events go to a bounded in-process buffer (and a bounded local
  copy of the session lists, so the feed still moves) and are flushed once Redis is back.
  A full buffer refuses the batch (the caller is told, ``dropped`` counts it): nothing is
  silently lost. ``accepted == written + len(buffer)`` at every moment.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from redis.exceptions import RedisError, ResponseError

from shared.contract.schemas import ArticleId, CustomerId
from shared.serving.redis_client import connect

log = logging.getLogger(__name__)

EventType = Literal["view", "click", "cart", "purchase"]
EVENT_TYPES: tuple[str, ...] = ("view", "click", "cart", "purchase")
# How much one event says about what the shopper wants next. Hand-set, ordered by how often
# each step leads to a purchase in public shop logs (RetailRocket: ~1 in 120 views, ~1 in 3
# carts end in a purchase); a purchase stays strong because repurchase and co-purchase are the
# strongest sources on this data. docs/events.md shows what the weights change.
EVENT_WEIGHTS: dict[str, float] = {"view": 0.25, "click": 1.0, "cart": 3.0, "purchase": 4.0}
# A session's weight halves every this many minutes: this visit's clicks beat yesterday's.
SESSION_HALF_LIFE_MIN = 60.0
MAX_BATCH = 100
MAX_FUTURE_S = 300.0  # client clocks drift; more than this ahead is a bug
MAX_AGE_S = 30 * 86400.0  # older than a month is not a session any more
SESSION_SEEDS = 20  # articles handed to stage one (it seeds from the first 10)

SessionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]


class Event(BaseModel):
    """One event. Exactly one of ``customer_id`` (a known shopper) and ``session_id`` (an
    anonymous visitor's cookie). ``ts``: the client's time (epoch seconds); the server's
    time when absent."""

    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId | None = None
    session_id: SessionId | None = None
    article_id: ArticleId
    type: EventType
    ts: float | None = Field(None, description="epoch seconds (client clock)")

    @model_validator(mode="after")
    def _one_owner(self) -> Event:
        if (self.customer_id is None) == (self.session_id is None):
            raise ValueError("give exactly one of customer_id and session_id")
        return self

    @property
    def session_key(self) -> str:
        return session_key(self.customer_id, self.session_id)


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[Event] = Field(..., min_length=1, max_length=MAX_BATCH)


def session_key(customer_id: str | None, session_id: str | None) -> str:
    """The session an event belongs to: ``s:<session_id>`` when given, else ``c:<customer_id>``."""
    return f"s:{session_id}" if session_id else f"c:{customer_id}"


def anonymous_customer_id(session_id: str) -> str:
    """A 64-hex id no real customer has, so an anonymous visitor goes through the same
    services (as an unknown customer: cold start, seeded by the session)."""
    return hashlib.sha256(f"anonymous-session:{session_id}".encode()).hexdigest()


def check_time(ts: float | None, now: float) -> str | None:
    """Why a client timestamp is refused, or None when it is fine."""
    if ts is None:
        return None
    if ts > now + MAX_FUTURE_S:
        return f"ts {ts:.0f} is {ts - now:.0f} s in the future (at most {MAX_FUTURE_S:.0f} s allowed)"
    if ts < now - MAX_AGE_S:
        return f"ts {ts:.0f} is more than {MAX_AGE_S / 86400:.0f} days old"
    return None


@dataclass(frozen=True)
class SessionEvent:
    type: str
    article_id: str
    ts: float


def encode_event(event: Event, received: float) -> dict[str, str]:
    """The stream entry's fields (strings: what Redis stores). ``uid`` is unique per accepted
    event: a write retried after a half-finished pipeline can repeat an entry (at least once),
    and readers drop the repeat by it."""
    return {
        "uid": secrets.token_hex(8),
        "session": event.session_key,
        "customer_id": event.customer_id or "",
        "session_id": event.session_id or "",
        "article_id": event.article_id,
        "type": event.type,
        "ts": repr(event.ts if event.ts is not None else received),
        "received": repr(received),
    }


def session_entry(fields: dict[str, str]) -> str:
    return f"{fields['type']}|{fields['article_id']}|{fields['ts']}"


def parse_session_entry(raw: bytes | str) -> SessionEvent | None:
    text = raw.decode() if isinstance(raw, bytes) else raw
    parts = text.split("|")
    if len(parts) != 3 or parts[0] not in EVENT_WEIGHTS:
        return None
    try:
        return SessionEvent(parts[0], parts[1], float(parts[2]))
    except ValueError:
        return None


def weighted_articles(
    events: Iterable[SessionEvent], now: float, limit: int = SESSION_SEEDS, min_type_weight: float = 0.0
) -> list[str]:
    """The session's articles, strongest first: sum over its events of the type's weight times
    a recency decay (half-life SESSION_HALF_LIFE_MIN). Stage one treats the order as recency,
    and seeds co-purchase and other colours from the first ten.

    e.g. cart A 0 min ago (3.0) beats three clicks on B 60 min ago (3 * 1.0 * 0.5 = 1.5)."""
    score: dict[str, float] = {}
    strongest: dict[str, float] = {}
    for e in events:
        age_min = max(0.0, now - e.ts) / 60.0
        score[e.article_id] = score.get(e.article_id, 0.0) + EVENT_WEIGHTS[e.type] * 0.5 ** (
            age_min / SESSION_HALF_LIFE_MIN
        )
        strongest[e.article_id] = max(strongest.get(e.article_id, 0.0), EVENT_WEIGHTS[e.type])
    kept = [a for a in score if strongest[a] >= min_type_weight]  # e.g. 1.0: an article only viewed does not seed
    return sorted(kept, key=lambda a: (-score[a], a))[:limit]


def session_digest(events: list[SessionEvent]) -> str:
    """Changes with every new event of the session (part of /recommend's cache key)."""
    if not events:
        return ""
    text = ";".join(f"{e.type}|{e.article_id}|{e.ts!r}" for e in events)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class BufferFull(Exception):
    """The local buffer cannot take the batch: the caller must retry later."""


@dataclass
class EventStoreConfig:
    redis_url: str
    prefix: str = "hm:ev"
    stream_maxlen: int = 1_000_000
    session_len: int = 50
    session_ttl_s: int = 7 * 86400
    buffer_max: int = 100_000
    local_sessions_max: int = 10_000
    socket_timeout_s: float = 0.2
    retry_interval_s: float = 1.0
    group: str = "drain"


COUNTERS = ("accepted", "buffered", "written", "dropped")


class EventStore:
    """Appends events to Redis (stream + session lists), or to a bounded buffer while Redis is
    away. Used from one event loop. ``on_count(name, n)`` feeds the service's metrics."""

    def __init__(
        self,
        config: EventStoreConfig,
        on_count: Callable[[str, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.stream_key = f"{config.prefix}:stream"
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.buffer: deque[dict[str, str]] = deque()
        self.local_sessions: OrderedDict[str, deque[str]] = OrderedDict()
        self._on_count = on_count or (lambda _n, _v: None)
        self._clock = clock
        self._flush_lock = asyncio.Lock()
        self._down_since: float | None = None
        self.last_error: str | None = None
        self.redis: Any = None  # redis.asyncio.Redis or RedisCluster (shared.serving.redis_client)
        if config.redis_url:
            # A single Redis or a Redis Cluster, from the URL (shared.serving.redis_client). One retry:
            # after a Redis restart each pooled connection fails once ("closed by server");
            # without it every one of them would read as an outage.
            self.redis = connect(config.redis_url, config.socket_timeout_s, 64, retries=1)

    def session_key_of(self, key: str) -> str:
        return f"{self.config.prefix}:session:{key}"

    def _count(self, name: str, n: int) -> None:
        self.counts[name] += n
        self._on_count(name, n)

    def _redis_usable(self) -> bool:
        if self.redis is None:
            return False
        return self._down_since is None or self._clock() - self._down_since >= self.config.retry_interval_s

    def _failed(self, exc: Exception) -> None:
        if self._down_since is None:
            log.warning("Redis unreachable for events (%s); buffering locally", exc)
        self._down_since = self._clock()
        self.last_error = f"{exc.__class__.__name__}: {exc}"

    def _worked(self) -> None:
        if self._down_since is not None:
            log.info("Redis is back for events")
        self._down_since, self.last_error = None, None

    async def _write(self, records: list[dict[str, str]]) -> None:
        """One pipelined round trip: XADD each, then LPUSH/LTRIM/EXPIRE each session once."""
        pipe = self.redis.pipeline(transaction=False)  # type: ignore[union-attr]
        by_session: dict[str, list[str]] = {}
        for fields in records:
            pipe.xadd(self.stream_key, dict[Any, Any](fields), maxlen=self.config.stream_maxlen, approximate=True)
            by_session.setdefault(fields["session"], []).append(session_entry(fields))
        for key, entries in by_session.items():
            name = self.session_key_of(key)
            pipe.lpush(name, *entries)
            pipe.ltrim(name, 0, self.config.session_len - 1)
            pipe.expire(name, self.config.session_ttl_s)
        await pipe.execute()

    def _buffer(self, records: list[dict[str, str]]) -> None:
        if len(self.buffer) + len(records) > self.config.buffer_max:
            self._count("dropped", len(records))
            raise BufferFull(f"event buffer full ({len(self.buffer)} of {self.config.buffer_max}); retry later")
        self.buffer.extend(records)
        for fields in records:  # so the feed still follows the session while Redis is away
            entries = self.local_sessions.setdefault(fields["session"], deque(maxlen=self.config.session_len))
            entries.appendleft(session_entry(fields))
            self.local_sessions.move_to_end(fields["session"])
        while len(self.local_sessions) > self.config.local_sessions_max:
            self.local_sessions.popitem(last=False)
        self._count("buffered", len(records))

    async def append(self, records: list[dict[str, str]]) -> str:
        """Store a validated batch: ``"redis"`` or ``"buffered"``; BufferFull when neither can."""
        if self.buffer and self._redis_usable():
            await self.flush()
        if not self.buffer and self._redis_usable():
            try:
                await self._write(records)
            except (RedisError, OSError) as exc:
                self._failed(exc)
            else:
                self._worked()
                self._count("accepted", len(records))
                self._count("written", len(records))
                return "redis"
        self._buffer(records)
        self._count("accepted", len(records))
        return "buffered"

    async def flush(self, chunk: int = 500) -> int:
        """Write the buffer to Redis, oldest first; stops at the first failure (kept for later)."""
        written = 0
        async with self._flush_lock:
            while self.buffer and self._redis_usable():
                batch = [self.buffer[i] for i in range(min(chunk, len(self.buffer)))]
                try:
                    await self._write(batch)
                except (RedisError, OSError) as exc:
                    self._failed(exc)
                    break
                self._worked()
                for _ in batch:
                    self.buffer.popleft()
                written += len(batch)
                self._count("written", len(batch))
            if not self.buffer:
                self.local_sessions.clear()
        return written

    async def flush_loop(self, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            if self.buffer:
                try:
                    await self.flush()
                except Exception:
                    log.exception("event buffer flush failed")

    async def recent(self, key: str) -> list[SessionEvent]:
        """The session's newest events, newest first ([] for none). Redis, or the local copy
        of what is still buffered when Redis is away."""
        raw: list[Any] = []
        local = self.local_sessions.get(key)
        if self._redis_usable():
            try:
                raw = await self.redis.lrange(self.session_key_of(key), 0, self.config.session_len - 1)  # type: ignore[union-attr]
            except (RedisError, OSError) as exc:
                self._failed(exc)
                raw = []
        if local:  # not flushed yet: newer than anything Redis holds
            raw = list(local) + list(raw)
        events = [e for e in (parse_session_entry(r) for r in raw) if e is not None]
        return events[: self.config.session_len]

    async def ensure_group(self) -> None:
        """Create the drain's consumer group (from the stream's start) if it is missing."""
        if self.redis is None:
            return
        try:
            await self.redis.xgroup_create(self.stream_key, self.config.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # any other refusal (e.g. protected mode): buffer, never crash
                self._failed(exc)
        except (RedisError, OSError) as exc:
            self._failed(exc)

    def state(self) -> dict[str, Any]:
        return {
            "backend": "redis" if self.redis is not None and self._down_since is None else "buffer",
            "buffered_now": len(self.buffer),
            "buffer_max": self.config.buffer_max,
            **self.counts,
            "error": self.last_error,
        }

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def decode_entry(entry_id: bytes | str, fields: dict[Any, Any]) -> dict[str, Any]:
    """A stream entry as a row of ``output/events/*.parquet``."""

    def text(name: str) -> str:
        value = fields.get(name.encode(), fields.get(name, b""))
        return value.decode() if isinstance(value, bytes) else str(value)

    return {
        "uid": text("uid"),
        "event_id": entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        "session": text("session"),
        "customer_id": text("customer_id") or None,
        "session_id": text("session_id") or None,
        "article_id": text("article_id"),
        "type": text("type"),
        "ts": float(text("ts") or 0.0),
        "received": float(text("received") or 0.0),
    }
