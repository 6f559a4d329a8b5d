"""/recommend through the gateway against fake services on loopback: paths, fallbacks, cache."""

from __future__ import annotations

import time

import pytest
import redis

from services.gateway.settings import GatewaySettings
from shared.contract.schemas import SearchFilters
from tests.gateway.gateway_fakes import (
    ARTICLES,
    CUSTOMER_MID,
    CUSTOMER_NEW,
    CUSTOMER_YOUNG,
    closed_port,
    redis_available,
)

A = ARTICLES  # A[0] is article 1 ... A[7] is article 8


def ids(body: dict) -> list[str]:
    return [item["article_id"] for item in body["items"]]


def test_ranker_path_reorders_candidates_and_drops_unknown_articles(make_gateway, fakes):
    gw = make_gateway()
    r = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "ranker" and body["degraded"] == [] and body["cached"] is False
    # candidates: A1, A2, 0999999999 (not in the catalogue), A3..A8; the fake ranker reverses
    # them: A8..A3, 0999999999, A2, A1; the unknown one cannot be shown -> 8 cards.
    assert ids(body) == [A[7], A[6], A[5], A[4], A[3], A[2], A[1], A[0]]
    assert body["total"] == 8
    assert body["model_versions"] == {"candidate": "v1", "ranker": "v1"}
    assert fakes.controls["candidate"].last_request["k"] == 1000  # num_candidates: stage one's whole list
    sent = fakes.controls["ranker"].last_request  # the columns wire (shared.contract.wire.RankColumnsRequest)
    assert len(sent["article_ids"]) == 9 and sent["k"] == 9
    assert sent["article_ids"][:3] == [A[0], A[1], "0999999999"] and sent["scores"][:2] == [0.9, 0.8]
    # each candidate's stage-one sources reach the ranker unchanged (they are ranker features)
    assert sent["sources"]["two_tower"][:2] == [0.9, 0.8] and sent["sources"]["repurchase"][:2] == [1.0, 0.0]
    assert body["ordering"] == "mmoe"
    card = body["items"][-1]  # article 1: Black Dress, mean price 0.10, has a photo
    assert card["name"] == "Item 1" and card["product_type"] == "Dress" and card["colour"] == "Black"
    assert card["price"] == pytest.approx(0.10) and card["image_url"] == f"/articles/{A[0]}/image"
    assert body["items"][0]["image_url"] is None  # article 8 has no photo


@pytest.mark.parametrize("columns", [(False, False), (True, False), (False, True), (True, True)], ids=str)
def test_services_that_answer_objects_give_the_same_feed(make_gateway, fakes, columns):
    """A candidate or ranker service that ignores ``wire=columns`` (an older one, a benchmark's
    fake) answers objects: the gateway reads either wire, passes stage one on in the wire it came
    in (as objects again to a ranker that refuses columns), so the feed is the same."""
    fakes.controls["candidate"].columns, fakes.controls["ranker"].columns = columns
    gw = make_gateway()
    body = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG, "k": 3}).json()
    assert body["source"] == "ranker" and body["degraded"] == []
    assert ids(body) == [A[7], A[6], A[5]]
    sent = fakes.controls["ranker"].last_request
    if columns == (True, True):
        assert sent["sources"]["repurchase"][:2] == [1.0, 0.0]
    else:  # an objects-only ranker refused the columns (422) and was asked again with objects
        assert sent["candidates"][0]["sources"] == {"two_tower": 0.9, "repurchase": 1.0}
    fakes.controls["ranker"].behaviour = "error"
    fallback = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG, "k": 2}).json()  # another key
    assert fallback["source"] == "candidates" and ids(fallback) == [A[0], A[1]]
    assert fallback["items"][0]["score"] == pytest.approx(0.9)


@pytest.mark.skipif(not redis_available(), reason="needs Redis at 127.0.0.1:6379 (redis-server --daemonize yes)")
def test_second_identical_call_is_a_redis_hit_and_the_key_carries_versions(make_gateway, fakes):
    gw = make_gateway()
    prefix = gw.app.state.gateway.settings.cache_prefix
    first = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG, "k": 5}).json()
    second = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG, "k": 5}).json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert ids(first) == ids(second)
    assert fakes.controls["candidate"].calls == 1
    keys = [k.decode() for k in redis.Redis(host="127.0.0.1", port=6379).keys(prefix + ":rec:*")]
    assert len(keys) == 1
    assert "candidate=v1" in keys[0] and "ranker=v1" in keys[0] and "catalogue=cat1" in keys[0]
    ttl = redis.Redis(host="127.0.0.1", port=6379).ttl(keys[0])
    assert 0 < ttl <= 300
    # A new model version is a different key: the old entry is not served.
    fakes.controls["ranker"].version = "v2"
    gw.app.state.gateway.versions["ranker"] = "v2"
    third = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG, "k": 5}).json()
    assert third["cached"] is False and third["model_versions"]["ranker"] == "v2"


def test_ranker_down_serves_candidate_order_and_is_not_cached(make_gateway, fakes):
    gw = make_gateway()
    fakes.controls["ranker"].behaviour = "error"
    for _ in range(2):
        body = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG, "k": 4}).json()
        assert body["source"] == "candidates" and body["degraded"] == ["ranker"] and body["cached"] is False
        assert ids(body) == [A[0], A[1], A[2], A[3]]  # candidate order, unknown id skipped
        assert body["items"][0]["score"] == pytest.approx(0.9)
    # ranker recovers -> the next request is re-ranked again (the degraded answer was not cached)
    fakes.controls["ranker"].behaviour = "ok"
    body = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG, "k": 4}).json()
    assert body["source"] == "ranker" and ids(body) == [A[7], A[6], A[5], A[4]]
    metrics = gw.get("/metrics").text
    assert 'hm_gateway_fallbacks_total{dependency="ranker",fallback="candidates",route="/recommend"} 2.0' in metrics


def test_slow_ranker_times_out_within_budget(make_gateway, fakes):
    gw = make_gateway(ranker_timeout_s=0.3)
    fakes.controls["ranker"].behaviour = "slow"  # sleeps 3 s
    started = time.perf_counter()
    body = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG}).json()
    took = time.perf_counter() - started
    assert body["source"] == "candidates" and body["degraded"] == ["ranker"]
    assert took < 1.5, f"took {took:.2f}s with a 0.3 s ranker budget"


def test_ranker_unreachable_port(make_gateway):
    gw = make_gateway(ranker_url=f"http://127.0.0.1:{closed_port()}")
    body = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG, "k": 2}).json()
    assert body["source"] == "candidates" and ids(body) == [A[0], A[1]]


def test_candidates_down_serves_age_band_popular(make_gateway, fakes):
    gw = make_gateway()
    fakes.controls["candidate"].behaviour = "error"
    body = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG}).json()
    assert body["source"] == "popular" and body["degraded"] == ["candidate"] and body["age_band"] == "16-24"
    # last 2 weeks (2020-09-09..22): 16-24 bought A5 twice, A6 once; padded with the overall
    # order A2 (3), A5 (2), A3 (1), A6 (1) minus what is there -> A5, A6, A2, A3
    assert ids(body) == [A[4], A[5], A[1], A[2]]
    assert fakes.controls["ranker"].calls == 0
    mid = gw.get("/recommend", params={"customer_id": CUSTOMER_MID}).json()
    assert mid["age_band"] == "35-44" and ids(mid) == [A[1], A[4], A[2], A[5]]
    new = gw.get("/recommend", params={"customer_id": CUSTOMER_NEW}).json()
    assert new["age_band"] == "unknown" and ids(new)[0] == A[2]  # the unknown band bought A3


def test_no_candidates_at_all_falls_back_to_popular_without_degrading(make_gateway, fakes):
    gw = make_gateway()
    fakes.controls["candidate"].behaviour = "empty"
    body = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG}).json()
    assert body["source"] == "popular" and body["degraded"] == [] and body["age_band"] == "16-24"
    assert ids(body) == [A[4], A[5], A[1], A[2]]
    assert fakes.controls["ranker"].calls == 0


def test_breaker_opens_after_threshold_then_recovers(make_gateway, fakes):
    gw = make_gateway(breaker_failure_threshold=2, breaker_reset_s=0.3)
    fakes.controls["ranker"].behaviour = "error"
    for _ in range(3):
        assert gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG}).json()["source"] == "candidates"
    assert fakes.controls["ranker"].calls == 2  # the third request never reached the ranker
    assert gw.app.state.gateway.clients["ranker"].breaker.state == "open"
    fakes.controls["ranker"].behaviour = "ok"
    time.sleep(0.35)  # reset_s passes -> half-open: one trial call goes through and closes it
    assert gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG}).json()["source"] == "ranker"
    assert gw.app.state.gateway.clients["ranker"].breaker.state == "closed"


def test_filters_apply_to_every_item(make_gateway):
    gw = make_gateway()
    body = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG, "colour_group_name": "Black"}).json()
    assert ids(body) == [A[7], A[5], A[2], A[0]] and all(i["colour"] == "Black" for i in body["items"])
    two = gw.get(
        "/recommend",
        params=[
            ("customer_id", CUSTOMER_YOUNG),
            ("colour_group_name", "Red"),
            ("colour_group_name", "Blue"),
            ("product_type_name", "Sweater"),
        ],
    ).json()
    assert ids(two) == [A[6], A[3]]  # the Blue sweaters; no Red sweater exists
    # mean prices: A1 .10, A2 .05, A3 .01, A5 .03, A6 .03; the rest never sold (excluded)
    priced = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG, "price_min": 0.03}).json()
    assert ids(priced) == [A[5], A[4], A[1], A[0]]


def test_paging(make_gateway):
    gw = make_gateway()
    body = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG, "k": 3, "offset": 3}).json()
    assert ids(body) == [A[4], A[3], A[2]] and body["total"] == 8 and body["offset"] == 3
    past_end = gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG, "k": 3, "offset": 9}).json()
    assert past_end["items"] == [] and past_end["total"] == 8


@pytest.mark.parametrize(
    "params",
    [
        {"customer_id": "not-hex"},
        {"customer_id": "A" * 64},  # upper case is not a valid id
        {"customer_id": "a" * 65},
        {},
        {"customer_id": "a" * 64, "k": 0},
        {"customer_id": "a" * 64, "k": 101},
        {"customer_id": "a" * 64, "k": "ten"},
        {"customer_id": "a" * 64, "offset": -1},
        {"customer_id": "a" * 64, "offset": 1001},
        {"customer_id": "a" * 64, "price_min": -1},
        {"customer_id": "a" * 64, "colour_group_name": "x" * 101},
    ],
)
def test_bad_input_is_422_with_a_message(make_gateway, fakes, params):
    gw = make_gateway()
    r = gw.get("/recommend", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]
    assert fakes.controls["candidate"].calls == 0


def test_redis_unreachable_falls_back_to_in_process_cache(make_gateway, fakes):
    gw = make_gateway(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    ready = gw.get("/readyz")
    assert ready.json()["cache"]["backend"] == "local" and ready.json()["cache"]["error"]
    first = gw.get("/recommend", params={"customer_id": CUSTOMER_MID}).json()
    second = gw.get("/recommend", params={"customer_id": CUSTOMER_MID}).json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["source"] == "ranker" and fakes.controls["candidate"].calls == 1
    metrics = gw.get("/metrics").text
    assert "hm_gateway_cache_redis_in_use 0.0" in metrics
    assert 'hm_gateway_cache_total{backend="local",result="hit"} 1.0' in metrics


BASE_VERSIONS = {"candidate": "v1", "ranker": "v1", "catalogue": "c1"}


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
