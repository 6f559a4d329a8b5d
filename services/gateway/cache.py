"""Cache-aside for gateway results: Redis when it answers, an in-process TTL cache when not.

- Keys carry the model/index versions and a digest of every request parameter, so a new
  model never serves stale rankings and two different requests never share an entry.
- Redis calls have short socket timeouts and no client-side retries: a slow or dead Redis
  must cost a request milliseconds, not seconds.
- After a Redis failure the cache switches to the in-process cache and tries Redis again at
  most every ``retry_interval_s`` (``probe()`` from the health loop, or the next request),
  then switches back. ``backend`` says which one is in use (reported in /readyz, /metrics).
- A burst that has every pooled Redis connection busy is *not* a Redis failure: at most
  ``REDIS_MAX_CONNECTIONS`` calls are in flight (a semaphore in front of the pool), the next
  one is a plain miss (get) or goes to the in-process cache (set), counted as ``busy``, and
  Redis stays in use. Before, redis-py's "Too many connections" read as "Redis is down" and
  switched every request to the local cache for ``retry_interval_s``.
- A Redis Cluster works the same way (``redis+cluster://host:port,...``, shared.serving.redis_client):
  every call is one GET or SET of one key, so keys need no hash tag and spread over the
  masters. A master that is gone fails the calls for its slots, which fall back as above.
- The in-process cache is bounded in entries *and* bytes (keys + values), so a flood of
  distinct large answers (image searches) cannot grow the gateway without limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError

from shared.serving.redis_client import REDIS_ERRORS, connect

log = logging.getLogger(__name__)

REDIS, LOCAL = "redis", "local"
REDIS_MAX_CONNECTIONS = 64
DEFAULT_LOCAL_MAX_BYTES = 64 * 1024 * 1024
# Per-entry bookkeeping beyond key and value bytes (tuple, OrderedDict node, str/bytes headers).
ENTRY_OVERHEAD_BYTES = 200


def cache_key(prefix: str, kind: str, versions: Mapping[str, str | None], params: Mapping[str, Any]) -> str:
    """``<prefix>:<kind>:<name>=<version>,...:<sha256 of the canonical params>``.

    Versions stay readable in the key (so ``redis-cli --scan`` shows what a model change
    invalidates); parameters are canonical JSON (sorted keys) hashed, so order of query
    parameters or filter values does not matter but every value does.
    """
    version_part = ",".join(f"{name}={versions[name] or '-'}" for name in sorted(versions))
    canonical = json.dumps(_canonical(params), sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    return f"{prefix}:{kind}:{version_part}:{digest}"


def dumps(value: dict[str, Any]) -> bytes:
    """Compact JSON (orjson: a feed of cards in a fifth of json's time); json where orjson
    refuses a value (a lone surrogate in text a client sent, which json escapes)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()


def mark_cached(raw: bytes) -> bytes:
    """Flip a stored response's top-level ``"cached":false`` without a JSON round trip.

    Responses put ``cached`` before any nested item, and no item has a ``cached`` key, so
    the first occurrence is the top-level one (tests check it)."""
    return raw.replace(b'"cached":false', b'"cached":true', 1)


def _canonical(value: Any) -> Any:
    """Filter lists are sets ("any of"): sort them so ['Red','Blue'] == ['Blue','Red']."""
    if isinstance(value, Mapping):
        return {k: _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        items = [_canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, default=str))
    return value


class LocalTTLCache:
    """A bounded LRU with per-entry expiry; used only from the event loop.

    Bounded by ``max_entries`` and by ``max_bytes`` (key + value + ``ENTRY_OVERHEAD_BYTES``
    each); the least recently used entries go first. A value larger than the whole byte
    budget is not stored at all."""

    def __init__(
        self, max_entries: int, clock: Callable[[], float] = time.monotonic, max_bytes: int = DEFAULT_LOCAL_MAX_BYTES
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    @staticmethod
    def _size(key: str, value: bytes) -> int:
        return len(key) + len(value) + ENTRY_OVERHEAD_BYTES

    def _drop(self, key: str) -> None:
        _expires, value = self._items.pop(key)
        self.bytes -= self._size(key, value)

    def get(self, key: str) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= self._clock():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return value

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if key in self._items:
            self._drop(key)
        size = self._size(key, value)
        if size > self.max_bytes:
            return
        self._items[key] = (self._clock() + ttl_s, value)
        self.bytes += size
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._items)))

    def __len__(self) -> int:
        return len(self._items)


class ResultCache:
    def __init__(
        self,
        redis_url: str,
        ttl_s: int,
        socket_timeout_s: float = 0.05,
        retry_interval_s: float = 2.0,
        local_max_entries: int = 10_000,
        on_event: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        local_max_bytes: int = DEFAULT_LOCAL_MAX_BYTES,
        max_connections: int = REDIS_MAX_CONNECTIONS,
    ) -> None:
        self.ttl_s = ttl_s
        self.retry_interval_s = retry_interval_s
        self._clock = clock
        self.local = LocalTTLCache(local_max_entries, clock, local_max_bytes)
        # Calls in flight to Redis: never more than the pool holds (see the module doc).
        self._slots = asyncio.Semaphore(max_connections)
        self.busy = 0
        # on_event(event, backend): 'hit' / 'miss' / 'error' / 'switch' / 'busy' for metrics.
        self._on_event = on_event or (lambda _e, _b: None)
        self.redis: Any = None  # redis.asyncio.Redis or RedisCluster (shared.serving.redis_client)
        if redis_url:
            # + 1: the health probe's PING.
            self.redis = connect(redis_url, socket_timeout_s, max_connections + 1)
        # Start optimistic: the first call (or probe) finds out.
        self._redis_ok = self.redis is not None
        self._last_failure = -float("inf")
        self.last_error: str | None = None if self.redis is not None else "no Redis configured"

    @property
    def backend(self) -> str:
        return REDIS if self._use_redis() else LOCAL

    def _use_redis(self) -> bool:
        if self.redis is None:
            return False
        return self._redis_ok or self._clock() - self._last_failure >= self.retry_interval_s

    def _redis_failed(self, exc: Exception) -> None:
        if self._redis_ok:
            log.warning("Redis unreachable (%s); using the in-process cache", exc)
            self._on_event("switch", LOCAL)
        self._redis_ok = False
        self._last_failure = self._clock()
        self.last_error = f"{exc.__class__.__name__}: {exc}"
        self._on_event("error", REDIS)

    def _redis_worked(self) -> None:
        if not self._redis_ok:
            log.info("Redis is back; using it again")
            self._on_event("switch", REDIS)
        self._redis_ok = True
        self.last_error = None

    def _pool_busy(self) -> bool:
        if self._slots.locked():
            self.busy += 1
            self._on_event("busy", REDIS)
            return True
        return False

    @staticmethod
    def _exhausted(exc: Exception) -> bool:
        """redis-py's own "pool is empty" errors: load, not an outage."""
        if isinstance(exc, MaxConnectionsError):
            return True
        return isinstance(exc, RedisConnectionError) and any(
            text in str(exc) for text in ("Too many connections", "No connection available")
        )

    async def get_raw(self, key: str) -> bytes | None:
        raw: bytes | None
        backend = REDIS if self._use_redis() else LOCAL
        if backend == REDIS and self._pool_busy():
            backend = LOCAL  # a miss unless the local cache has it; Redis stays in use
        if backend == REDIS:
            try:
                async with self._slots:
                    raw = await self.redis.get(key)  # type: ignore[union-attr,assignment]
                self._redis_worked()
            except REDIS_ERRORS as exc:
                if self._exhausted(exc):
                    self.busy += 1
                    self._on_event("busy", REDIS)
                else:
                    self._redis_failed(exc)
                backend, raw = LOCAL, self.local.get(key)
        else:
            raw = self.local.get(key)
        self._on_event("miss" if raw is None else "hit", backend)
        return raw

    async def set_raw(self, key: str, raw: bytes) -> None:
        if self._use_redis() and not self._pool_busy():
            try:
                async with self._slots:
                    await self.redis.set(key, raw, ex=self.ttl_s)  # type: ignore[union-attr]
                self._redis_worked()
                return
            except REDIS_ERRORS as exc:
                if self._exhausted(exc):
                    self.busy += 1
                    self._on_event("busy", REDIS)
                else:
                    self._redis_failed(exc)
        self.local.set(key, raw, self.ttl_s)

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await self.get_raw(key)
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: dict[str, Any]) -> None:
        await self.set_raw(key, dumps(value))

    async def probe(self) -> bool:
        """PING Redis if it is due (health loop); returns whether Redis is in use."""
        if self.redis is None:
            return False
        if self._redis_ok or self._clock() - self._last_failure >= self.retry_interval_s:
            try:
                await self.redis.ping()
                self._redis_worked()
            except REDIS_ERRORS as exc:
                self._redis_failed(exc)
        return self._redis_ok

    def state(self) -> dict[str, Any]:
        return {
            "backend": REDIS if self.redis is not None and self._redis_ok else LOCAL,
            "redis_configured": self.redis is not None,
            "redis_ok": self._redis_ok,
            "local_entries": len(self.local),
            "local_bytes": self.local.bytes,
            "pool_busy": self.busy,
            "ttl_s": self.ttl_s,
            "error": self.last_error,
        }

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
