"""The gateway cache's resource bounds: bytes in the local cache, and a busy Redis pool that
is not mistaken for Redis being down."""

from __future__ import annotations

import asyncio

from redis.exceptions import ConnectionError as RedisConnectionError

from services.gateway.cache import ENTRY_OVERHEAD_BYTES, LOCAL, REDIS, LocalTTLCache, ResultCache


def test_local_cache_is_bounded_in_bytes_least_recent_first():
    entry = 1000 + len("k0") + ENTRY_OVERHEAD_BYTES
    cache = LocalTTLCache(max_entries=1000, max_bytes=3 * entry)
    for i in range(3):
        cache.set(f"k{i}", b"x" * 1000, 60)
    assert cache.bytes == 3 * entry and len(cache) == 3
    cache.get("k0")  # k0 is now the most recent
    cache.set("k3", b"x" * 1000, 60)
    assert cache.get("k1") is None and cache.get("k0") is not None and len(cache) == 3
    assert cache.bytes <= cache.max_bytes
    cache.set("k0", b"y" * 10, 60)  # replacing an entry gives its bytes back
    assert cache.bytes == 2 * entry + 10 + 2 + ENTRY_OVERHEAD_BYTES
    cache.set("huge", b"z" * (4 * entry), 60)  # larger than the whole budget: not stored, nothing evicted
    assert cache.get("huge") is None and len(cache) == 3


def test_expired_entries_give_their_bytes_back():
    t = [0.0]
    cache = LocalTTLCache(max_entries=10, clock=lambda: t[0], max_bytes=10_000)
    cache.set("a", b"x" * 100, 1)
    t[0] = 2.0
    assert cache.get("a") is None and cache.bytes == 0


def test_a_busy_pool_is_a_miss_not_an_outage(monkeypatch):
    async def run() -> None:
        cache = ResultCache("redis://127.0.0.1:6379/0", ttl_s=60, max_connections=2)
        events: list[tuple[str, str]] = []
        cache._on_event = lambda e, b: events.append((e, b))
        # Every slot taken (a burst in flight): the next call does not queue and does not fail over.
        await cache._slots.acquire()
        await cache._slots.acquire()
        assert await cache.get_raw("hm:test:busy") is None
        await cache.set_raw("hm:test:busy", b"v")
        assert ("busy", REDIS) in events and ("switch", LOCAL) not in events
        assert cache.backend == REDIS and cache.state()["redis_ok"] and cache.state()["pool_busy"] == 2
        cache._slots.release()
        cache._slots.release()

        # redis-py's own exhaustion error reads the same way.
        async def exhausted(*_a, **_k):
            raise RedisConnectionError("Too many connections")

        monkeypatch.setattr(cache.redis, "get", exhausted)
        assert await cache.get_raw("hm:test:busy") == b"v"  # the set above went to the local cache
        assert await cache.get_raw("hm:test:other") is None
        assert cache.backend == REDIS and cache.last_error is None

        # A real connection failure still switches to the local cache.
        async def refused(*_a, **_k):
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        monkeypatch.setattr(cache.redis, "get", refused)
        await cache.get_raw("hm:test:busy")
        assert cache.state()["backend"] == LOCAL and ("switch", LOCAL) in events
        await cache.close()

    asyncio.run(run())
