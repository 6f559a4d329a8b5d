"""The product as real processes: cache, Redis outage, and each dependency's fallback.

Every test leaves the stack whole (``live_stack`` restarts whatever it stopped). Requests
that must miss the cache use a k never used before (``fresh_k``).
"""

from __future__ import annotations

import re

import httpx
import pytest
import redis

from .helpers import fresh_k, recommend, wait_until

pytestmark = pytest.mark.integration

RECOVERY_S = 20.0  # breaker reset 1 s + health poll 0.5 s in the e2e stack, with slack


def _redis_keys(url: str, prefix: str) -> list[bytes]:
    return list(redis.Redis.from_url(url, socket_timeout=1).scan_iter(match=f"{prefix}*", count=1000))


def test_feed_has_12_articles_with_details_and_photos(live_stack, customers):
    r = recommend(live_stack.gateway, customers[0], k=12)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "ranker"
    assert body["degraded"] == []
    items = body["items"]
    assert len(items) == 12
    assert len({it["article_id"] for it in items}) == 12, "duplicate articles in one feed"
    for it in items:
        assert re.fullmatch(r"\d{10}", it["article_id"])
        assert it["name"] and it["product_type"] and it["colour"]
        assert it["price"] is None or it["price"] > 0
    img = httpx.get(live_stack.gateway + items[0]["image_url"], timeout=10)
    assert img.status_code == 200
    assert img.headers["content-type"].startswith("image/")
    assert img.content[:3] == b"\xff\xd8\xff", "not a JPEG"


def test_second_identical_call_is_cached_and_the_key_is_in_redis(live_stack, customers):
    from .conftest import SHARED_REDIS_URL

    k = fresh_k()
    before = set(_redis_keys(SHARED_REDIS_URL, live_stack.cache_prefix))
    first = recommend(live_stack.gateway, customers[1], k=k)
    second = recommend(live_stack.gateway, customers[1], k=k)
    assert first.status_code == second.status_code == 200
    assert first.json()["cached"] is False
    assert second.json()["cached"] is True
    assert [i["article_id"] for i in second.json()["items"]] == [i["article_id"] for i in first.json()["items"]]
    new_keys = set(_redis_keys(SHARED_REDIS_URL, live_stack.cache_prefix)) - before
    assert len(new_keys) == 1, f"expected exactly one new cache key, got {new_keys}"
    key = new_keys.pop()
    ttl = redis.Redis.from_url(SHARED_REDIS_URL).ttl(key)
    assert 0 < ttl <= 120  # HM_GATEWAY_CACHE_TTL_S in the e2e stack
    # The key names the model versions that made the answer, so a new model never hits it.
    versions = first.json()["model_versions"]
    assert f"candidate={versions['candidate']}" in key.decode()
    assert f"ranker={versions['ranker']}" in key.decode()


def test_redis_down_serves_uncached_then_uses_redis_again(gateway_private_redis, private_redis, customers):
    gw = gateway_private_redis.url
    r = recommend(gw, customers[2], k=fresh_k())
    assert r.status_code == 200 and r.json()["cached"] is False
    assert private_redis.client().dbsize() >= 1, "gateway did not write its result to Redis"

    private_redis.stop()
    try:
        r = recommend(gw, customers[2], k=fresh_k())
        assert r.status_code == 200, r.text
        assert r.json()["cached"] is False
        assert r.json()["source"] == "ranker", "a Redis outage must not degrade ranking"
        # Health says the cache fell back to the in-process one.
        ready = wait_until(lambda: _cache_backend(gw) == "local", 5, what="readyz cache backend local")
        assert ready
    finally:
        private_redis.start()

    # Redis is empty after the restart; the gateway must find it again by itself.
    wait_until(lambda: _cache_backend(gw) == "redis", RECOVERY_S, what="readyz cache backend redis")
    k = fresh_k()
    assert recommend(gw, customers[2], k=k).status_code == 200
    assert private_redis.client().dbsize() >= 1, "gateway did not go back to Redis"
    assert recommend(gw, customers[2], k=k).json()["cached"] is True


def _cache_backend(gateway_url: str) -> str | None:
    body = httpx.get(gateway_url + "/readyz", timeout=5).json()
    return body["cache"]["backend"]


def test_ranker_stopped_serves_candidate_order_then_ranker_again(live_stack, customers):
    live_stack.stop("ranker")
    k_degraded = fresh_k()
    r = recommend(live_stack.gateway, customers[3], k=k_degraded)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "candidates"
    assert body["degraded"] == ["ranker"]
    assert body["cached"] is False
    assert len(body["items"]) >= 1

    live_stack.start("ranker")
    # The same request again: a degraded answer is never cached, so it gets the ranker now.
    back = wait_until(
        lambda: (b := recommend(live_stack.gateway, customers[3], k=k_degraded).json())["source"] == "ranker" and b,
        RECOVERY_S,
        what="source=ranker after the ranker came back",
    )
    assert back["cached"] is False and back["degraded"] == []


def test_candidate_stopped_serves_popular_then_ranker_again(live_stack, customers):
    live_stack.stop("candidate")
    k = fresh_k()
    r = recommend(live_stack.gateway, customers[4], k=k)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "popular"
    assert body["degraded"] == ["candidate"]
    assert len(body["items"]) == min(k, body["total"]) and body["total"] >= 12
    assert body["age_band"], "popular fallback should say which age band it used"

    live_stack.start("candidate")
    back = wait_until(
        lambda: (b := recommend(live_stack.gateway, customers[4], k=k).json())["source"] == "ranker" and b,
        RECOVERY_S,
        what="source=ranker after the candidate service came back",
    )
    assert back["cached"] is False and back["degraded"] == []


def test_search_stopped_is_503_for_search_only(live_stack, customers):
    ok = httpx.post(live_stack.gateway + "/search", json={"query": "dress", "k": 12}, timeout=15)
    assert ok.status_code == 200, ok.text

    live_stack.stop("search")
    r = httpx.post(live_stack.gateway + "/search", json={"query": "dress", "k": fresh_k()}, timeout=15)
    assert r.status_code == 503
    assert "search" in r.text.lower()
    rec = recommend(live_stack.gateway, customers[5], k=fresh_k())
    assert rec.status_code == 200 and rec.json()["source"] == "ranker"

    live_stack.start("search")
    wait_until(
        lambda: (
            httpx.post(live_stack.gateway + "/search", json={"query": "dress", "k": fresh_k()}, timeout=15).status_code
            == 200
        ),
        RECOVERY_S,
        what="/search 200 after the search service came back",
    )


def test_the_served_feed_is_what_the_evaluation_scores(live_stack, e2e_world):
    """Serve what we evaluate: every held-out buyer's /recommend feed over HTTP equals the
    offline ``pipeline`` method's top 12 (stage one -> ranker), and the bytes of
    reranked_recommendations.parquet agree with both."""
    import pandas as pd

    from pipeline.evaluation import load_context
    from pipeline.methods.ranker import build_methods
    from pipeline.served import served_over_http
    from shared.config import get_paths

    data_dir, output_dir = e2e_world
    ctx = load_context(get_paths(data_dir, output_dir), k=12)
    buyers = ctx.customers[:30]
    offline = build_methods(ctx)["pipeline"](buyers)
    served = served_over_http(live_stack.gateway)(buyers)
    assert served == {c: offline[c][:12] for c in buyers}
    batch = pd.read_parquet(output_dir / "reranked_recommendations.parquet")
    batch = batch[batch["customer_id"].isin(buyers)].sort_values(["customer_id", "rank"])
    assert {c: list(g) for c, g in batch.groupby("customer_id")["article_id"]} == served
