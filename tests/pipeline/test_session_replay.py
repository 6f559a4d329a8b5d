"""Synthetic browsing sessions (ratios, timing, determinism), the session weighting, and the
session replay's bookkeeping (no event of the scored day is revealed; numbers by hand)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from pipeline.session_replay import Query, build_queries, replay
from pipeline.synthetic import generate_world
from pipeline.synthetic.sessions import synthesise_sessions
from services.gateway.event_store import SessionEvent, anonymous_customer_id, session_digest, weighted_articles
from shared.data import load_dataset


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("sessions_world")
    generate_world(out, scale="tiny", seed=0, images=False)
    return load_dataset(out)


@pytest.fixture(scope="module")
def window(world):
    end = world.transactions["t_dat"].max().date() + timedelta(days=1)
    start = end - timedelta(days=14)
    return start, end, synthesise_sessions(world.transactions, world.articles, start, end, seed=0)


def _bought(world, start: date, end: date) -> pd.DataFrame:
    tx = world.transactions
    return tx[(tx["t_dat"] >= pd.Timestamp(start)) & (tx["t_dat"] < pd.Timestamp(end))]


def test_ratios_are_the_stated_ones(world, window):
    start, end, events = window
    counts = events["type"].value_counts()
    online = _bought(world, start, end).drop_duplicates(["customer_id", "article_id", "t_dat"])
    online = online[online["sales_channel_id"] == 2]
    # one purchase event per distinct online purchase (minus lead-ups cut by the window's start)
    assert counts["purchase"] == pytest.approx(len(online), rel=0.02)
    # carts: 1 bought + Poisson(2) abandoned per online purchase (+ 5 % of browsing views) -> ~3 : 1
    assert 2.7 < counts["cart"] / counts["purchase"] < 3.6
    assert 6 < counts["view"] / counts["purchase"] < 16
    assert set(counts.index) == {"view", "click", "cart", "purchase"}


def test_every_online_purchase_was_clicked_and_carted_before_it_was_bought(window):
    _start, _end, events = window
    first = events.groupby(["customer_id", "article_id", "type"])["ts"].min().unstack()
    bought = first.dropna(subset=["purchase"])
    assert (bought["click"] < bought["purchase"]).mean() > 0.99
    assert (bought["cart"] <= bought["purchase"]).mean() > 0.99
    # about half the lead-ups start on an earlier day (consideration time)
    earlier = (bought["purchase"] // 86400 - bought["click"] // 86400) >= 1
    assert 0.35 < earlier.mean() < 0.65


def test_non_buyers_browse_too_and_it_is_deterministic(world, window):
    start, end, events = window
    buyers = set(_bought(world, start, end)["customer_id"])
    browsers = set(events["customer_id"]) - buyers
    assert len(browsers) > 0.1 * len(buyers)
    again = synthesise_sessions(world.transactions, world.articles, start, end, seed=0)
    pd.testing.assert_frame_equal(events, again)
    other = synthesise_sessions(world.transactions, world.articles, start, end, seed=1)
    assert not events.equals(other)


def test_weights_by_type_and_recency():
    now = 10_000.0
    events = [SessionEvent("click", "B", now - 3600)] * 3 + [
        SessionEvent("cart", "A", now),
        SessionEvent("view", "C", now),
    ]
    # A: cart 3.0; B: 3 clicks an hour ago 3 * 1.0 * 0.5 = 1.5; C: view 0.25
    assert weighted_articles(events, now) == ["A", "B", "C"]
    assert weighted_articles(events, now, limit=1) == ["A"]
    assert session_digest([]) == "" and session_digest(events) != session_digest(events[:-1])
    assert anonymous_customer_id("abcdefgh") != anonymous_customer_id("abcdefgi")


def test_the_replay_reveals_only_events_before_the_scored_day():
    cutoff = date(2020, 9, 16)
    day0 = pd.Timestamp(cutoff).timestamp()
    week = pd.DataFrame(
        {"t_dat": pd.to_datetime(["2020-09-16", "2020-09-18"]), "customer_id": ["c1", "c1"], "article_id": ["A", "B"]}
    )
    events = pd.DataFrame(
        {
            "customer_id": ["c1"] * 3,
            "article_id": ["X", "B", "Y"],
            "type": ["click", "cart", "view"],
            "ts": [day0 - 3600, day0 + 86400 + 60, day0 + 2 * 86400 + 60],
        }
    )
    q = build_queries(week, events, cutoff)
    assert [(x.day, x.truth, x.seeds) for x in q] == [
        (cutoff, {"A"}, ["X"]),
        (cutoff + timedelta(days=2), {"B"}, ["B", "X"]),
    ]


def test_replay_scores_each_feed_on_the_same_queries():
    queries = [Query("c1", date(2020, 9, 16), {"A"}, ["A"]), Query("c2", date(2020, 9, 16), {"B"}, [])]

    def stage_one(ids, recent):  # a session puts its first seed on top; else "Z", then "B"
        rows = []
        for i, cid in enumerate(ids):
            top = recent[i][:1] if recent and recent[i] else []
            rows += [(cid, a) for a in [*top, "Z", "B"]]
        return pd.DataFrame(rows, columns=["customer_id", "article_id"])

    def rerank(frame, k, recent=None):
        return frame.groupby("customer_id", sort=False).head(k)

    scores = replay(queries, stage_one, rerank, popular=["B"], k=12)
    # c1: without session A is missed (0); with it A is first (1). c2 (no session): [Z, B] -> 1/2
    np.testing.assert_allclose(scores["customer"], [0.0, 0.5])
    np.testing.assert_allclose(scores["customer+session"], [1.0, 0.5])
    np.testing.assert_allclose(scores["anonymous"], [0.0, 0.5])
    np.testing.assert_allclose(scores["anonymous+session"], [1.0, 0.5])
    np.testing.assert_allclose(scores["customer+session-bought"], [0.0, 0.5])  # A hidden: back to no session
    np.testing.assert_allclose(scores["popular"], [0.0, 1.0])
