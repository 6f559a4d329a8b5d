"""Units of the gateway: breaker states, cache keys, TTL cache, Redis fallback and return, catalogue."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import pytest

from services.gateway.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from services.gateway.cache import LOCAL, REDIS, LocalTTLCache, ResultCache, cache_key
from services.gateway.catalogue import build_catalogue, popular_by_band
from services.gateway.settings import GatewaySettings
from shared.schemas import SearchFilters
from tests.gateway.gateway_fakes import ARTICLES, closed_port, tiny_frames

A = ARTICLES


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- breaker ---------------------------------------------------------------------------------------


def test_breaker_cycle():
    clock = FakeClock()
    b = CircuitBreaker("ranker", failure_threshold=3, reset_s=10, clock=clock)
    b.record_failure()
    b.record_failure()
    assert b.state == CLOSED and b.allow()
    b.record_success()  # a success resets the consecutive count
    for _ in range(3):
        b.record_failure()
    assert b.state == OPEN and not b.allow()
    clock.now += 9.9
    assert not b.allow()
    clock.now += 0.1  # reset_s elapsed: one trial only
    assert b.state == HALF_OPEN
    assert b.allow() and not b.allow()
    b.record_failure()  # the trial failed: open for another reset_s
    assert b.state == OPEN and not b.allow()
    clock.now += 10
    assert b.allow()
    b.record_success()
    assert b.state == CLOSED and b.allow() and b.allow()


def test_breaker_release_frees_the_trial_slot():
    clock = FakeClock()
    b = CircuitBreaker("search", failure_threshold=1, reset_s=1, clock=clock)
    b.record_failure()
    clock.now += 1
    assert b.allow() and not b.allow()
    b.release()  # a 4xx says nothing about health
    assert b.allow()


def test_breaker_refuses_nonsense():
    with pytest.raises(ValueError):
        CircuitBreaker("x", failure_threshold=0)


# --- cache keys ------------------------------------------------------------------------------------

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


def test_recommend_key_includes_every_filter_field():
    from types import SimpleNamespace

    from services.gateway.recommend import recommend_key

    state = SimpleNamespace(settings=GatewaySettings(redis_url=""))
    versions = dict(BASE_VERSIONS)
    base = recommend_key(state, versions, "a" * 64, 12, 0, SearchFilters())
    seen = {base}
    for field in SearchFilters.model_fields:
        value = 0.5 if field.startswith("price") else ["x"]
        key = recommend_key(state, versions, "a" * 64, 12, 0, SearchFilters(**{field: value}))
        assert key not in seen, field
        seen.add(key)


# --- in-process cache ------------------------------------------------------------------------------


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


# --- catalogue --------------------------------------------------------------------------------------


def test_popular_by_band_counts_only_the_last_weeks():
    articles, customers, transactions = tiny_frames()
    # one week: 2020-09-16..22 -> young A5 x2, mid A2 x1
    one = popular_by_band(transactions, customers, weeks=1, per_band=3)
    assert one["all"] == [A[4], A[1]]  # A5 (2) before A2 (1)
    assert one["16-24"] == [A[4], A[1]] and one["35-44"] == [A[1], A[4]]
    # three weeks start 2020-09-02: mid's A1 (2020-09-01) is still out; four weeks reach it
    three = popular_by_band(transactions, customers, weeks=3, per_band=10)
    assert A[0] not in three["35-44"]
    four = popular_by_band(transactions, customers, weeks=4, per_band=10)
    assert four["35-44"][:2] == [A[1], A[0]]


def test_compile_filter_and_mean_price(tmp_path):
    articles, customers, transactions = tiny_frames()
    cat = build_catalogue(articles, customers, transactions, tmp_path)
    assert cat.compile_filter(SearchFilters()) is None
    black_dress = cat.compile_filter(SearchFilters(colour_group_name=["Black"], product_type_name=["Dress"]))
    assert [a for a in A if black_dress(a)] == [A[0], A[7]]
    assert not black_dress("0999999999")
    # A2 was bought at 0.05 three times -> mean 0.05; A5 at 0.02 and 0.04 -> 0.03
    assert cat.card(A[1])["price"] == pytest.approx(0.05) and cat.card(A[4])["price"] == pytest.approx(0.03)
    cheap = cat.compile_filter(SearchFilters(price_max=0.03))
    assert [a for a in A if cheap(a)] == [A[2], A[4], A[5]]
    assert cat.card(A[3])["price"] is None and cat.card(A[0])["image_url"] is None  # no photos in tmp_path


def test_catalogue_from_the_real_sample(hm_sample_dir, tmp_path):
    """The loaders' output on real rows: padded ids, photos found, prices from transactions."""
    from services.gateway.catalogue import load_catalogue

    cat = load_catalogue(hm_sample_dir / "resaved_by_pandas", None, popular_weeks=2, popular_per_band=50)
    assert len(cat.article_ids) == 4903 and all(len(a) == 10 for a in cat.article_ids[:50])
    assert len(cat.popular["all"]) == 50
    real = load_catalogue(hm_sample_dir, None, popular_weeks=2, popular_per_band=10)
    assert len(real.article_ids) == 1500 and real.has_image.sum() > 1000
    some = real.article_ids[int(real.has_image.argmax())]
    assert real.image_path(some).is_file()


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
