"""Feature building: hand-worked values, and the leakage proof (the label week changes nothing)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from services.candidate.features import (
    ARTICLE_CAT_COLUMNS,
    article_dynamic_features,
    article_stats,
    article_table,
    build_feature_space,
    customer_price_band,
    popular_articles,
    postal_bucket,
    query_features,
    training_examples,
)
from shared.age_bands import tower_age_bucket
from tests.candidate.conftest import CUTOFF, aid, cid, toy_dataset


def space_of(ds, history_len=4):
    return build_feature_space(ds.articles, ds.customers, ds.transactions, CUTOFF, history_len, postal_buckets=50)


def test_vocabularies_only_know_customers_who_bought_before_the_cutoff(toy):
    space = space_of(toy)
    # customers 1, 2, 3 bought before 2020-09-16; 4 never did.
    assert list(space.customer_ids) == [cid(1), cid(2), cid(3)]
    assert list(space.customer_index([cid(2), cid(4)])) == [2, 0]
    assert list(space.article_index([aid(5), "0000000099"])) == [5, 0]


def test_history_is_most_recent_distinct_purchases_before_the_day(toy):
    space = space_of(toy)
    feats = query_features(space, toy.customers, toy.transactions, np.array([cid(1), cid(2), cid(4)]), CUTOFF)
    # customer 1: 09-10 a1, 09-02 a3, 08-27 a1 (repeat, dropped) and a2 -> [1, 3, 2, 0]
    # customer 2: 09-15 a4, 09-03 a2 -> [4, 2, 0, 0]; customer 4 never bought -> zeros
    assert feats["history"].tolist() == [[1, 3, 2, 0], [4, 2, 0, 0], [0, 0, 0, 0]]
    # ages 23 -> band 20-24 = 2, 51 -> 50-54 = 8, 30 -> 30-34 = 4
    assert feats["age_bucket"].tolist() == [2, 8, 4]
    assert feats["customer_idx"].tolist() == [1, 2, 0]
    assert feats["fn"].tolist() == [1.0, 0.0, 1.0]


def test_the_query_table_answers_what_query_features_does(toy):
    """A batch's query inputs computed once equal a call for those customers alone; ids outside
    the batch (one the data has never seen, one it has: cid(3)) are computed on the spot."""
    from services.candidate.features import QueryFeatureTable

    space = build_feature_space(toy.articles, toy.customers, toy.transactions, CUTOFF)
    ids = np.array([cid(4), cid(2), "f" * 64, cid(1), cid(2), cid(3)], dtype=object)  # cid(2) twice
    table = QueryFeatureTable(space, toy.customers, toy.transactions, CUTOFF, np.array([cid(1), cid(2), cid(4)]))
    direct = query_features(space, toy.customers, toy.transactions, ids, CUTOFF)
    looked_up = table(ids)
    assert set(looked_up) == set(direct)
    for name, values in direct.items():
        np.testing.assert_array_equal(looked_up[name], values, err_msg=name)
    assert looked_up["history"][3].any() and not looked_up["history"][2].any()
    np.testing.assert_array_equal(looked_up["history"][4], looked_up["history"][1])  # both copies
    assert looked_up["history"][1].any()


def test_the_dynamic_feature_index_is_the_per_day_computation_bit_for_bit():
    """Training computes the article features at 26 week starts from one sorted index: each
    equals the direct computation over the rows, whatever the day (before all sales, on a sale
    day, after all of them), unknown articles (index 0) included."""
    from services.candidate.features import DynamicFeatureIndex, _dynamic_features

    rng = np.random.default_rng(3)
    n = 40
    articles = rng.integers(0, n + 1, 5_000)
    days = rng.integers(18_000, 18_400, 5_000).astype(np.int32)
    index = DynamicFeatureIndex(n, articles, days)
    for end in (17_990, 18_000, 18_001, 18_123, 18_399, 18_400, 18_700):
        np.testing.assert_array_equal(index.at(end), _dynamic_features(n, articles, days, end), err_msg=str(end))
    # Days are packed beside the article in one int64 from 1900 on: earlier ones are refused.
    with pytest.raises(ValueError, match="1900"):
        DynamicFeatureIndex(n, articles, days - 50_000)
    with pytest.raises(ValueError, match="1900"):
        index.at(-30_000)


def test_training_examples_use_each_weeks_own_history(toy):
    space = space_of(toy)
    x, y = training_examples(space, toy.customers, toy.transactions, CUTOFF, weeks=3)
    # week from 08-26: c1 a1, c1 a2 (empty history); from 09-02: c1 a3 (history [1, 2]), c2 a2;
    # from 09-09: c1 a1 (history [3, 1, 2]), c3 a4, c2 a4 (history [2]).
    assert y.tolist() == [1, 2, 3, 2, 1, 4, 4]
    assert x["customer_idx"].tolist() == [1, 1, 1, 2, 1, 3, 2]
    assert x["history"][2].tolist() == [1, 2, 0, 0]
    assert x["history"][4].tolist() == [3, 1, 2, 0]
    assert x["history"][6].tolist() == [2, 0, 0, 0]
    assert x["week"].tolist() == [3, 3, 2, 2, 1, 1, 1]


def test_article_dynamic_features_by_hand(toy):
    space = space_of(toy)
    dyn = article_dynamic_features(space, toy.transactions, CUTOFF)
    # last 7 days [09-09, 09-16): a1 once, a4 twice; 3 sales over 5 articles
    assert dyn[1, 0] == pytest.approx(math.log1p(1 * 5 / 3), rel=1e-5)
    assert dyn[4, 0] == pytest.approx(math.log1p(2 * 5 / 3), rel=1e-5)
    assert dyn[2, 0] == 0.0
    # a1 first sold 08-27: 20 days = 2.857 weeks, / 52
    assert dyn[1, 2] == pytest.approx(20 / 7 / 52, rel=1e-5)
    # a5 never sold before the cutoff
    assert dyn[5, 3] == 1.0 and dyn[1, 3] == 0.0 and dyn[0].tolist() == [0, 0, 0, 0, 0]
    # last sales: a2 on 09-03 = 13 days before, a4 on 09-15 = 1 day; a5 never (1.0)
    assert dyn[2, 4] == pytest.approx(13 / 7 / 52, rel=1e-5)
    assert dyn[4, 4] == pytest.approx(1 / 7 / 52, rel=1e-5)
    assert dyn[5, 4] == 1.0


def test_article_table_codes_follow_sorted_vocabularies(toy):
    space = space_of(toy)
    table = article_table(space, toy.articles)
    # colour vocab sorted: Black, Blue, Red, White -> a1 Black = 1, a4 Red = 3; row 0 padding
    colour = ARTICLE_CAT_COLUMNS.index("colour_group_name")
    assert table[:, colour].tolist() == [0, 1, 2, 1, 3, 4]


def test_age_and_postal_buckets():
    assert tower_age_bucket(np.array([np.nan, 16, 19.9, 20, 64, 65, 90])).tolist() == [0, 1, 1, 2, 10, 11, 11]
    a = postal_bucket(pd.Series(["abc", "abc", "xyz", ""]), 50)
    assert a[0] == a[1] and a[3] == 0 and 1 <= a[2] < 50
    # stable across calls (a fixed hash key, not Python's salted hash)
    assert postal_bucket(pd.Series(["abc"]), 50)[0] == a[0]


def _everything(ds):
    """Every feature the candidate stage computes for the week starting CUTOFF."""
    space = space_of(ds)
    ids = np.array([cid(i) for i in range(1, 6)])
    x, y = training_examples(space, ds.customers, ds.transactions, CUTOFF, weeks=3)
    return {
        "customer_ids": space.customer_ids.tolist(),
        "query": query_features(space, ds.customers, ds.transactions, ids, CUTOFF),
        "train_x": x,
        "train_y": y,
        "dynamic": article_dynamic_features(space, ds.transactions, CUTOFF),
        "stats": article_stats(space.article_ids, ds.transactions, CUTOFF),
        "band": customer_price_band(ds.transactions, ids, CUTOFF),
        "popular": popular_articles(ds.transactions, ds.customers, CUTOFF),
    }


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        va, vb = a[k], b[k]
        if isinstance(va, dict):
            _assert_same(va, vb)
        elif isinstance(va, pd.DataFrame):
            pd.testing.assert_frame_equal(va, vb)
        elif isinstance(va, np.ndarray):
            np.testing.assert_array_equal(va, vb)
        else:
            assert va == vb, k


def test_no_feature_sees_the_label_week():
    clean = toy_dataset()
    tampered = toy_dataset()
    tx = tampered.transactions
    label = tx["t_dat"] >= pd.Timestamp(CUTOFF)
    assert label.sum() == 3
    # Rewrite every label-week row and add new ones, including a brand-new buyer (customer 4)
    # and a purchase of the never-sold article 5 on the cutoff day itself.
    tx.loc[label, "article_id"] = aid(5)
    tx.loc[label, "price"] = 9.99
    extra = pd.DataFrame(
        {
            "t_dat": pd.to_datetime(["2020-09-16", "2020-09-22", "2020-09-30"]),
            "customer_id": [cid(4), cid(1), cid(2)],
            "article_id": [aid(5), aid(2), aid(3)],
            "price": np.array([0.5, 0.5, 0.5], np.float32),
            "sales_channel_id": np.array([1, 1, 1], np.int8),
        }
    )
    tampered.transactions = pd.concat([tx, extra], ignore_index=True)
    _assert_same(_everything(clean), _everything(tampered))
    # ... and the check has teeth: moving one row from before the cutoff into it changes features.
    moved = toy_dataset()
    moved.transactions.loc[6, "t_dat"] = pd.Timestamp(CUTOFF)  # c2's 09-15 purchase of a4
    with pytest.raises(AssertionError):
        _assert_same(_everything(clean), _everything(moved))


def test_recent_distinct_matches_a_plain_reading_of_the_rule() -> None:
    """Newest first, each article once (its newest purchase), ties on a day by article-id rank."""
    from services.candidate.features import recent_distinct

    rng = np.random.default_rng(3)
    n = 400
    rows, arts, days = rng.integers(0, 15, n), rng.integers(0, 12, n).astype(np.int32), rng.integers(0, 20, n)
    tie_rank = rng.permutation(13)
    got = recent_distinct(rows, arts, days, 16, 5, tie_rank)
    for r in range(16):
        seen: list[int] = []
        for i in sorted(np.flatnonzero((rows == r) & (arts > 0)), key=lambda i: (-days[i], tie_rank[arts[i]])):
            if arts[i] not in seen:
                seen.append(int(arts[i]))
        assert got[r].tolist() == (seen + [0] * 5)[:5], r
