"""The gateway's result cache: keys (by hand and as properties), the TTL cache and its bounds in
bytes, falling back from Redis and back to it, and a busy Redis pool that is not mistaken for
Redis being down."""

from __future__ import annotations

import asyncio
import shutil
import string
import subprocess
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError

from services.gateway.cache import ENTRY_OVERHEAD_BYTES, LOCAL, REDIS, LocalTTLCache, ResultCache, cache_key
from shared.contract.schemas import FILTER_COLUMNS
from tests.gateway.gateway_fakes import closed_port


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


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


BASE_VERSIONS = {"candidate": "v1", "ranker": "v1", "catalogue": "c1"}

BASE_PARAMS = {"customer_id": "a" * 64, "k": 12, "offset": 0, "filters": {"colour_group_name": ["Red", "Blue"]}}


def test_cache_key_changes_with_every_version_and_parameter():
    base = cache_key("p", "rec", BASE_VERSIONS, BASE_PARAMS)
    assert base.startswith("p:rec:candidate=v1,catalogue=c1,ranker=v1:")
    for name in BASE_VERSIONS:
        assert cache_key("p", "rec", {**BASE_VERSIONS, name: "v2"}, BASE_PARAMS) != base
    variants = [
        {**BASE_PARAMS, "customer_id": "b" * 64},
        {**BASE_PARAMS, "k": 13},
        {**BASE_PARAMS, "offset": 12},
        {**BASE_PARAMS, "filters": {"colour_group_name": ["Red"]}},
        {**BASE_PARAMS, "filters": {"colour_group_name": ["Red", "Blue"], "price_max": 0.05}},
        {**BASE_PARAMS, "filters": {"department_name": ["Red", "Blue"]}},
    ]
    keys = {cache_key("p", "rec", BASE_VERSIONS, v) for v in variants}
    assert base not in keys and len(keys) == len(variants)
    assert cache_key("p", "search-text", BASE_VERSIONS, BASE_PARAMS) != base


def test_cache_key_ignores_order_of_filter_values_and_unset_params():
    reordered = {**BASE_PARAMS, "filters": {"colour_group_name": ["Blue", "Red"]}}
    with_none = {**BASE_PARAMS, "filters": {**BASE_PARAMS["filters"], "price_min": None}}
    base = cache_key("p", "rec", BASE_VERSIONS, BASE_PARAMS)
    assert cache_key("p", "rec", BASE_VERSIONS, reordered) == base
    assert cache_key("p", "rec", BASE_VERSIONS, with_none) == base


def test_local_ttl_cache_expires_and_evicts_least_recent():
    clock = FakeClock()
    c = LocalTTLCache(max_entries=2, clock=clock)
    c.set("a", b"1", ttl_s=5)
    c.set("b", b"2", ttl_s=5)
    assert c.get("a") == b"1"  # a is now most recent
    c.set("c", b"3", ttl_s=5)  # evicts b
    assert c.get("b") is None and c.get("a") == b"1" and c.get("c") == b"3"
    clock.now += 5
    assert c.get("a") is None and len(c) == 1


def test_redis_at_a_closed_port_falls_back_without_slowing_requests():
    events: list[tuple[str, str]] = []

    async def scenario() -> None:
        cache = ResultCache(
            f"redis://127.0.0.1:{closed_port()}/0",
            ttl_s=60,
            socket_timeout_s=0.05,
            retry_interval_s=60,
            on_event=lambda e, b: events.append((e, b)),
        )
        started = time.perf_counter()
        assert await cache.get("k") is None
        await cache.set("k", {"x": 1})
        assert await cache.get("k") == {"x": 1}
        took = time.perf_counter() - started
        assert took < 0.5, took
        assert cache.backend == LOCAL and cache.state()["redis_ok"] is False
        assert "Connection" in (cache.state()["error"] or "")
        await cache.close()

    asyncio.run(scenario())
    # one failed Redis GET, then local miss, local set, local hit (no retry within 60 s)
    assert events == [("switch", LOCAL), ("error", REDIS), ("miss", LOCAL), ("hit", LOCAL)]


def test_no_redis_configured_means_local_only():
    async def scenario() -> None:
        cache = ResultCache("", ttl_s=60)
        await cache.set("k", {"x": 1})
        assert await cache.get("k") == {"x": 1}
        assert await cache.probe() is False and cache.state()["backend"] == LOCAL

    asyncio.run(scenario())


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (apt-get install redis-server)")
def test_redis_used_again_when_it_returns(tmp_path):
    """A private redis-server on a free port: down at first, started, then used again."""
    port = closed_port()

    async def scenario() -> None:
        cache = ResultCache(f"redis://127.0.0.1:{port}/0", ttl_s=60, socket_timeout_s=0.05, retry_interval_s=0.2)
        assert await cache.probe() is False and cache.backend == LOCAL
        await cache.set("k", {"where": "local"})
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 10
            while not await cache.probe():
                assert time.monotonic() < deadline, "redis did not come back"
                await asyncio.sleep(0.25)
            assert cache.backend == REDIS
            assert await cache.get("k") is None  # Redis is empty: the local entry is not used any more
            await cache.set("k", {"where": "redis"})
            assert await cache.get("k") == {"where": "redis"}
            assert 0 < await cache.redis.ttl("k") <= 60
        finally:
            await cache.close()
            proc.terminate()
            proc.wait(timeout=10)

    asyncio.run(scenario())


def test_mark_cached_flips_only_the_top_level_flag():
    from services.gateway.cache import dumps, mark_cached

    body = {
        "customer_id": "a" * 64,
        "source": "ranker",
        "cached": False,
        "items": [{"name": '"cached":false', "cached": False}],
    }
    flipped = __import__("json").loads(mark_cached(dumps(body)))
    assert flipped["cached"] is True
    assert flipped["items"] == body["items"]  # nested text and keys untouched


# Model versions are plain folder names (the CLI refuses anything else).
# --- cache keys as properties (issue 7, fuzzing: "cache keys") ----------------------------------
# The hand-worked cases above, over many generated requests: a key is a pure function of (kind,
# versions, parameters), blind to the order of parameters and of filter values and to unset (None)
# parameters, and different for any change of a version or of a parameter's value.

version = st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=20)

versions = st.fixed_dictionaries({"candidate": version, "ranker": version, "catalogue": version})

filter_values = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4, unique=True)

filters = st.dictionaries(st.sampled_from(FILTER_COLUMNS), filter_values, max_size=3)

params = st.fixed_dictionaries(
    {
        "customer_id": st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        "k": st.integers(1, 100),
        "offset": st.integers(0, 500),
        "filters": filters,
    }
)


@settings(max_examples=200, deadline=None)
@given(versions, params, st.randoms(use_true_random=False))
def test_key_ignores_order_of_parameters_and_filter_values(vs, ps, rnd):
    shuffled_filters = {}
    for column in rnd.sample(list(ps["filters"]), len(ps["filters"])):
        values = list(ps["filters"][column])
        rnd.shuffle(values)
        shuffled_filters[column] = values
    shuffled = dict(reversed(list({**ps, "filters": shuffled_filters}.items())))
    shuffled_versions = dict(reversed(list(vs.items())))
    assert cache_key("p", "rec", shuffled_versions, shuffled) == cache_key("p", "rec", vs, ps)


@settings(max_examples=200, deadline=None)
@given(versions, params)
def test_unset_parameters_are_the_same_as_absent_ones(vs, ps):
    with_none = {**ps, "filters": {**ps["filters"], "price_min": None}, "unused": None}
    assert cache_key("p", "rec", vs, with_none) == cache_key("p", "rec", vs, ps)


@settings(max_examples=200, deadline=None)
@given(versions, params, st.sampled_from(["candidate", "ranker", "catalogue"]), version)
def test_any_new_version_gives_a_new_key(vs, ps, name, new):
    changed = {**vs, name: new}
    same = changed[name] == vs[name]
    assert (cache_key("p", "rec", changed, ps) == cache_key("p", "rec", vs, ps)) == same
    # Versions stay readable in the key (redis-cli --scan shows what a model change invalidates).
    assert f"{name}={new}" in cache_key("p", "rec", changed, ps)


@settings(max_examples=200, deadline=None)
@given(versions, params, params)
def test_different_requests_never_share_a_key(vs, a, b):
    def canonical(p: dict) -> tuple:
        return (p["customer_id"], p["k"], p["offset"], sorted((c, tuple(sorted(v))) for c, v in p["filters"].items()))

    same_request = canonical(a) == canonical(b)
    assert (cache_key("p", "rec", vs, a) == cache_key("p", "rec", vs, b)) == same_request
    assert cache_key("p", "rec", vs, a) != cache_key("p", "search-text", vs, a)
    assert cache_key("p", "rec", vs, a).startswith("p:rec:")
