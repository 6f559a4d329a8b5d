"""POST /events against real Redis: validation, storage (stream + session list), the next
/recommend reflecting the session, anonymous sessions, counters, and the drain to parquet."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import redis

from pipeline.event_drain import drain, read_events
from services.gateway.event_store import anonymous_customer_id
from tests.gateway.gateway_fakes import ARTICLES, CUSTOMER_MID, CUSTOMER_NEW, redis_available

pytestmark = pytest.mark.skipif(not redis_available(), reason="needs Redis at 127.0.0.1:6379")


@pytest.fixture
def prefix(monkeypatch: pytest.MonkeyPatch):
    value = f"hm:test-ev:{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("HM_EVENTS_PREFIX", value)
    yield value
    client = redis.Redis()
    for key in client.scan_iter(f"{value}:*"):
        client.delete(key)


def ev(article: str, type_: str = "click", **owner: object) -> dict[str, object]:
    return {"article_id": article, "type": type_, **(owner or {"customer_id": CUSTOMER_MID})}


def test_events_go_to_the_stream_and_the_session_list(make_gateway, prefix):
    gw = make_gateway()
    r = gw.post("/events", json={"events": [ev(ARTICLES[0], "view"), ev(ARTICLES[1], "cart")]})
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 2, "stored": "redis"}
    client = redis.Redis()
    assert client.xlen(f"{prefix}:stream") == 2
    entries = client.lrange(f"{prefix}:session:c:{CUSTOMER_MID}", 0, -1)
    assert [e.split(b"|")[:2] for e in entries] == [[b"cart", ARTICLES[1].encode()], [b"view", ARTICLES[0].encode()]]
    assert 0 < client.ttl(f"{prefix}:session:c:{CUSTOMER_MID}") <= 7 * 86400
    metrics = gw.get("/metrics").text
    assert 'hm_gateway_events_total{outcome="accepted"} 2.0' in metrics
    assert 'hm_gateway_events_total{outcome="written"} 2.0' in metrics


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"events": [ev("0999999999")]}, "no article 0999999999"),
        ({"events": [ev(ARTICLES[0], "like")]}, "view"),
        ({"events": [{**ev(ARTICLES[0]), "ts": time.time() + 3600}]}, "in the future"),
        ({"events": [{**ev(ARTICLES[0]), "ts": 1.0}]}, "days old"),
        ({"events": [ev(ARTICLES[0])] * 101}, "100"),
        ({"events": []}, "at least 1"),
        ({"events": [{"article_id": ARTICLES[0], "type": "click"}]}, "exactly one"),
        ({"events": [ev(ARTICLES[0], customer_id=CUSTOMER_MID, session_id="abcdefgh")]}, "exactly one"),
        ({"events": [ev(ARTICLES[0], session_id="no spaces allowed")]}, "pattern"),
        ({"events": [ev(ARTICLES[0], customer_id="XYZ")]}, "pattern"),
    ],
)
def test_bad_events_are_a_422_with_a_message_and_nothing_is_stored(make_gateway, prefix, body, needle):
    gw = make_gateway()
    r = gw.post("/events", json=body)
    assert r.status_code == 422, r.text
    assert needle in r.text
    assert redis.Redis().xlen(f"{prefix}:stream") == 0


def test_malformed_bodies_are_4xx_never_500(make_gateway, prefix):
    gw = make_gateway()
    for raw in (b"", b"{", b"[]", b'{"events": "x"}', b'{"events": [1]}', b"\xff\xfe"):
        r = gw.post("/events", content=raw, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (raw, r.status_code)


def test_the_next_feed_is_seeded_by_the_session_and_not_served_from_cache(make_gateway, fakes, prefix):
    gw = make_gateway()
    first = gw.get("/recommend", params={"customer_id": CUSTOMER_MID}).json()
    assert fakes.controls["candidate"].last_request["recent_article_ids"] is None
    assert gw.get("/recommend", params={"customer_id": CUSTOMER_MID}).json()["cached"] is True
    gw.post("/events", json={"events": [ev(ARTICLES[4], "click"), ev(ARTICLES[5], "cart"), ev(ARTICLES[4], "view")]})
    after = gw.get("/recommend", params={"customer_id": CUSTOMER_MID}).json()
    assert after["cached"] is False and first["session"] is None
    # cart 3.0 > click 1.0 + view 0.25: the cart comes first
    assert fakes.controls["candidate"].last_request["recent_article_ids"] == [ARTICLES[5], ARTICLES[4]]
    assert after["session"] == {
        "events": 3,
        "counts": {"view": 1, "click": 1, "cart": 1, "purchase": 0},
        "because": [ARTICLES[5], ARTICLES[4]],
    }
    assert gw.get("/recommend", params={"customer_id": CUSTOMER_MID}).json()["cached"] is True


def test_an_anonymous_session_is_served_as_an_unknown_customer_seeded_by_its_clicks(make_gateway, fakes, prefix):
    gw = make_gateway()
    sid = "anon_" + uuid.uuid4().hex[:12]
    gw.post("/events", json={"events": [ev(ARTICLES[2], session_id=sid), ev(ARTICLES[3], session_id=sid)]})
    body = gw.get("/recommend", params={"session_id": sid}).json()
    sent = fakes.controls["candidate"].last_request
    assert sent["customer_id"] == anonymous_customer_id(sid) == body["customer_id"]
    assert sorted(sent["recent_article_ids"]) == [ARTICLES[2], ARTICLES[3]]
    assert body["session"]["events"] == 2
    assert gw.get("/recommend").status_code == 422
    assert gw.get("/recommend", params={"session_id": "bad id!"}).status_code == 422


def test_a_customer_without_events_is_unchanged(make_gateway, fakes, prefix):
    gw = make_gateway()
    body = gw.get("/recommend", params={"customer_id": CUSTOMER_NEW}).json()
    assert body["session"] is None
    assert fakes.controls["candidate"].last_request["recent_article_ids"] is None


def test_drain_writes_parquet_acknowledges_and_empties_the_stream(make_gateway, prefix, tmp_path: Path):
    gw = make_gateway()
    for i in range(3):
        gw.post("/events", json={"events": [ev(ARTICLES[i], "view"), ev(ARTICLES[i], "click")]})
    assert drain("redis://127.0.0.1:6379/0", prefix, tmp_path, follow=False, count=4) == 6
    frame = read_events(tmp_path)
    assert len(frame) == 6 and len(list(tmp_path.glob("events-*.parquet"))) == 2  # batches of 4 + 2
    assert list(frame["type"]) == ["view", "click"] * 3
    assert set(frame["customer_id"]) == {CUSTOMER_MID}
    assert redis.Redis().xlen(f"{prefix}:stream") == 0
    assert drain("redis://127.0.0.1:6379/0", prefix, tmp_path, follow=False) == 0


def test_the_drain_command_writes_under_the_output_dir(make_gateway, prefix, tmp_path: Path):
    from click.testing import CliRunner

    from pipeline.cli import cli

    gw = make_gateway()
    gw.post("/events", json={"events": [ev(ARTICLES[0], "purchase"), ev(ARTICLES[1], "view")]})
    result = CliRunner().invoke(
        cli,
        [
            "events",
            "drain",
            "--redis-url",
            "redis://127.0.0.1:6379/0",
            "--prefix",
            prefix,
            "--output-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "drained 2 events" in result.output
    assert list(read_events(tmp_path / "events")["type"]) == ["purchase", "view"]
    down = CliRunner().invoke(
        cli,
        ["events", "drain", "--redis-url", "redis://127.0.0.1:1/0", "--prefix", prefix, "--output-dir", str(tmp_path)],
    )
    assert down.exit_code == 1 and "Redis at redis://127.0.0.1:1/0" in down.output
