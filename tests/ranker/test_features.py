"""Ranker features: hand-worked numbers, documented defaults, no leakage, save/load."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from services.ranker.features import (
    DAYS_CAP,
    FEATURE_NAMES,
    RECENCY_CAP,
    FeatureStore,
    build_feature_store,
    candidate_ranks,
    compute_features,
    features_frame,
)
from tests.ranker.conftest import A1, A2, A3, A4, C1, C2, C3, CUTOFF, hand_shop

UNKNOWN_C = "f" * 64
UNKNOWN_A = "0999999999"


def rows(store: FeatureStore, pairs: list[tuple[str, str, float]]) -> pd.DataFrame:
    c, a, s = zip(*pairs, strict=True)
    return features_frame(compute_features(store, list(c), list(a), list(s)))


def test_customer_features_by_hand(shop_store: FeatureStore) -> None:
    # History before 2020-09-16: C1 bought A1 (15 and 6 days before, 0.02 each) and A3
    # (1 day, 0.05); C2 bought A1 37 days before (0.03). Shop mean price 0.12 / 4 = 0.03,
    # online share 2 / 4 = 0.5.
    f = rows(shop_store, [(C1, A1, 1.0), (C2, A1, 1.0), (C3, A1, 1.0), (UNKNOWN_C, A1, 1.0)])
    c1, c2, c3, unknown = (f.iloc[i] for i in range(4))
    assert c1.cust_age == 30 and c1.cust_age_missing == 0
    assert c1.cust_log_purchases == pytest.approx(math.log(4))  # log1p(3)
    assert c1.cust_log_purchases_4w == pytest.approx(math.log(4))  # all 3 within 28 days
    assert c1.cust_days_since_last == 1
    assert c1.cust_log_spend == pytest.approx(math.log(4), rel=1e-5)  # log1p(0.09 / 0.03)
    assert c1.cust_online_share == pytest.approx(2 / 3)
    assert c1.cust_price_level == pytest.approx(1.0)  # 0.03 / 0.03
    # C2: age unknown -> median of known ages (30, 60) = 45, flagged.
    assert c2.cust_age == 45 and c2.cust_age_missing == 1
    assert c2.cust_log_purchases_4w == 0 and c2.cust_days_since_last == 37
    # C3 has no history: true zeros for counts, neutral shop values elsewhere, flagged.
    assert c3.cust_has_history == 0 and c3.cust_log_purchases == 0 and c3.cust_log_spend == 0
    assert c3.cust_days_since_last == DAYS_CAP
    assert c3.cust_online_share == pytest.approx(0.5) and c3.cust_price_level == 1.0
    # Unknown customer: the same as no history, age unknown.
    assert unknown.cust_has_history == 0 and unknown.cust_age_missing == 1 and unknown.cust_age == 45
    assert unknown.cust_days_since_last == DAYS_CAP


def test_article_features_by_hand(shop_store: FeatureStore) -> None:
    f = rows(shop_store, [(C1, A1, 1.0), (C1, A2, 1.0), (C1, A3, 1.0), (C1, UNKNOWN_A, 1.0)])
    a1, a2, a3, unknown = (f.iloc[i] for i in range(4))
    # A1 sold 6, 15 and 37 days before: 1 in the last week, 1 in two weeks, 2 in four, 3 total.
    assert (a1.art_log_sales_1w, a1.art_log_sales_2w) == pytest.approx((math.log(2), math.log(2)))
    assert a1.art_log_sales_4w == pytest.approx(math.log(3))
    assert a1.art_log_sales_total == pytest.approx(math.log(4))
    assert a1.art_trend == pytest.approx((1 + 1) / (2 / 4 + 1))  # 1.333
    assert a1.art_days_since_first_sale == 37 and a1.art_days_since_last_sale == 6
    assert a1.art_price_level == pytest.approx(0.07 / 3 / 0.03, rel=1e-5)  # 0.778
    assert a1.art_online_share == pytest.approx(1 / 3)
    # A2's only sale is ON the cutoff (label week): for features it was never sold.
    assert a2.art_never_sold == 1 and a2.art_unknown == 0 and a2.art_log_sales_total == 0
    assert a2.art_days_since_first_sale == 0 and a2.art_days_since_last_sale == DAYS_CAP
    assert a2.art_price_level == 1.0 and a2.art_trend == 1.0
    assert a3.art_trend == pytest.approx(2 / 1.25)  # (1 + 1) / (1/4 + 1)
    assert unknown.art_unknown == 1 and unknown.art_never_sold == 1
    assert unknown.art_online_share == pytest.approx(0.5)


def test_pair_and_candidate_features_by_hand(shop_store: FeatureStore) -> None:
    f = rows(shop_store, [(C1, A1, 0.9), (C1, A2, 0.5), (C1, A3, 0.7), (C1, A4, 0.1), (C3, A4, 0.3)])
    a1, a2, a3, a4, c3a4 = (f.iloc[i] for i in range(5))
    # Candidate ranks within C1's list by score 0.9 > 0.7 > 0.5 > 0.1: A1 0, A3 1, A2 2, A4 3.
    assert list(f.cand_log_rank[:4]) == pytest.approx(np.log1p([0, 2, 1, 3]).tolist())
    assert list(f.cand_score_gap[:4]) == pytest.approx([0.0, 0.4, 0.2, 0.8])
    assert c3a4.cand_log_rank == 0 and c3a4.cand_score_gap == 0  # C3's own list has one row
    # C1 bought A1 twice, last 6 days ago.
    assert a1.pair_log_times_bought == pytest.approx(math.log(3)) and a1.pair_never_bought == 0
    assert a1.pair_days_since_bought == 6
    assert a2.pair_never_bought == 1 and a2.pair_days_since_bought == DAYS_CAP
    # C1's distinct purchases by recency: A3 (1 day ago) rank 0, A1 (6 days ago) rank 1.
    assert (a3.pair_recency_rank, a1.pair_recency_rank) == (0, 1)
    assert a2.pair_recency_rank == RECENCY_CAP
    # A2 shares product code 1 with A1 (2 of C1's 3 purchases); all 3 were Trousers.
    assert a2.pair_same_code_share == pytest.approx(2 / 3) and a2.pair_same_type_share == pytest.approx(1.0)
    assert a4.pair_same_code_share == 0 and a4.pair_same_type_share == 0  # a Sweater
    # A3 costs 0.05 = 1.667 x the shop mean; C1 pays 1.0 x on average.
    assert a3.pair_price_ratio == pytest.approx(5 / 3, rel=1e-5) and a3.pair_price_ratio_missing == 0
    # A2 never sold: no price level -> neutral ratio, flagged.
    assert a2.pair_price_ratio == 1.0 and a2.pair_price_ratio_missing == 1
    assert c3a4.pair_price_ratio_missing == 1  # C3 has no history


def test_age_band_affinity_by_hand() -> None:
    young, older = "1" * 64, "2" * 64
    articles = pd.DataFrame(
        {"article_id": ["0000000010", "0000000020"], "product_code": [10, 20], "product_type_name": ["Top", "Top"]}
    )
    customers = pd.DataFrame({"customer_id": [young, older], "age": np.array([20, 50], dtype=np.float32)})
    tx = pd.DataFrame(
        {
            "t_dat": pd.to_datetime(["2020-01-01"] * 4),
            "customer_id": [young, young, older, older],
            "article_id": ["0000000010", "0000000010", "0000000020", "0000000020"],
            "price": np.float32(0.01),
            "sales_channel_id": np.int8(1),
        }
    )
    store = build_feature_store(tx, customers, articles, CUTOFF)
    f = rows(
        store,
        [
            (young, "0000000010", 1.0),
            (older, "0000000010", 1.0),
            ("f" * 64, "0000000010", 1.0),
            (young, "0000000099", 1.0),
        ],
    )
    # Shop: half the purchases by band 0 (<25), half by band 3 (45-54). Article 10: 2 of 2 by band 0.
    # Smoothed with 20 pseudo-buyers: band 0 (2 + 20*0.5) / 22 = 0.5454 -> lift 0.5454 / 0.5 = 1.0909;
    # band 3 (0 + 10) / 22 = 0.4545 -> lift 0.9091.
    assert f.pair_age_band_affinity.tolist() == pytest.approx([12 / 11, 10 / 11, 1.0, 1.0], rel=1e-5)


def test_candidate_ranks_ties_and_groups() -> None:
    ranks, best = candidate_ranks(np.array(["x", "y", "x", "x"], dtype=object), np.array([0.1, 5.0, 0.3, 0.2]))
    assert ranks.tolist() == [2, 0, 0, 1]
    assert best.tolist() == [0.3, 5.0, 0.3, 0.3]
    # Ties share the best rank of the tie, whatever order the rows come in.
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]):
        cust = np.array(["x", "x", "x", "x"], dtype=object)[order]
        ranks, _ = candidate_ranks(cust, np.array([0.5, 0.5, 0.1, 0.9])[order])
        assert ranks.tolist() == np.array([1, 1, 3, 0])[order].tolist()


def test_non_finite_scores_become_the_worst_of_their_list(shop_store: FeatureStore) -> None:
    f = rows(shop_store, [(C1, A1, 0.9), (C1, A2, float("nan")), (C1, A3, 0.2)])
    assert np.isfinite(f.to_numpy()).all()
    assert f.cand_score.tolist() == pytest.approx([0.9, 0.2, 0.2])


def test_every_feature_is_finite_and_named(shop_store: FeatureStore) -> None:
    f = rows(shop_store, [(c, a, 0.5) for c in (C1, C2, C3, UNKNOWN_C) for a in (A1, A2, A3, A4, UNKNOWN_A)])
    assert list(f.columns) == FEATURE_NAMES
    assert np.isfinite(f.to_numpy()).all()


def test_no_leakage_rows_on_or_after_the_cutoff_change_nothing() -> None:
    articles, customers, tx = hand_shop()
    base = build_feature_store(tx, customers, articles, CUTOFF)
    # Flood the label week and the future with purchases by everyone of everything.
    future = pd.DataFrame(
        {
            "t_dat": pd.to_datetime(["2020-09-16", "2020-09-17", "2020-10-30"] * 4),
            "customer_id": [C1, C2, C3] * 4,
            "article_id": [A1, A2, A3, A4] * 3,
            "price": np.float32(9.0),
            "sales_channel_id": np.int8(2),
        }
    )
    flooded = build_feature_store(pd.concat([tx, future], ignore_index=True), customers, articles, CUTOFF)
    pairs = [(c, a, 0.5) for c in (C1, C2, C3) for a in (A1, A2, A3, A4)]
    assert np.array_equal(rows(base, pairs).to_numpy(), rows(flooded, pairs).to_numpy())
    # The same extra rows one day BEFORE the cutoff do change the features (the test can fail).
    past = future.assign(t_dat=pd.Timestamp("2020-09-15"))
    moved = build_feature_store(pd.concat([tx, past], ignore_index=True), customers, articles, CUTOFF)
    assert not np.array_equal(rows(base, pairs).to_numpy(), rows(moved, pairs).to_numpy())


def test_store_save_load_round_trip(tmp_path, shop_store: FeatureStore) -> None:  # type: ignore[no-untyped-def]
    shop_store.save(tmp_path)
    loaded = FeatureStore.load(tmp_path)
    pairs = [(c, a, s) for c in (C1, C2, C3, UNKNOWN_C) for a, s in ((A1, 0.3), (A2, 0.2), (UNKNOWN_A, 0.1))]
    assert np.array_equal(rows(shop_store, pairs).to_numpy(), rows(loaded, pairs).to_numpy())
    assert loaded.cutoff == CUTOFF


def test_works_on_the_real_resaved_sample(hm_sample_dir) -> None:  # type: ignore[no-untyped-def]
    from shared.data import load_dataset

    ds = load_dataset(hm_sample_dir / "resaved_by_pandas")
    tx = ds.transactions
    # The sample's rows are all from one day: features as of the next day see all of them.
    cutoff = (tx["t_dat"].max() + pd.Timedelta(days=1)).date()
    store = build_feature_store(tx, ds.customers, ds.articles, cutoff)
    sample = tx.head(200)
    f = features_frame(compute_features(store, sample["customer_id"], sample["article_id"], np.zeros(len(sample))))
    assert np.isfinite(f.to_numpy()).all()
    assert (f.pair_never_bought == 0).all()  # every row was a real purchase
    assert (f.cust_has_history == 1).all() and (f.art_never_sold == 0).all()
    assert (f.art_unknown == 0).all()  # ids that lost their leading zero still match


def test_taste_shares_and_neighbour_sales_by_hand(shop) -> None:  # type: ignore[no-untyped-def]
    # Same shop with departments, colours and prints. Before the cutoff C1 bought A1 twice (15
    # and 6 days ago) and A3 (1 day ago); C2 bought A1 37 days ago; C3 nothing.
    articles, customers, tx = shop
    articles = articles.assign(
        department_no=[10, 10, 20, 20], colour_group_code=[9, 9, 9, 5], graphical_appearance_no=[1, 2, 1, 2]
    )
    store = build_feature_store(tx, customers, articles, CUTOFF)
    f = rows(
        store,
        [
            (C1, A2, 0.5),
            (C1, A4, 0.4),
            (C1, A1, 0.9),
            (C2, A1, 0.9),
            (C3, A1, 0.9),
            (C2, A2, 0.1),
            (UNKNOWN_C, A1, 0.1),
            (C1, UNKNOWN_A, 0.1),
        ],
    )
    c1a2, c1a4, c1a1, c2a1, c3a1, c2a2, unknown_c, unknown_a = (f.iloc[i] for i in range(8))
    # C1's 3 purchases: department 10 twice, 20 once; colour 9 three times; print 1 three times.
    assert (c1a2.pair_department_share, c1a2.pair_colour_share, c1a2.pair_graphic_share) == pytest.approx(
        (2 / 3, 1.0, 0.0)
    )
    assert (c1a4.pair_department_share, c1a4.pair_colour_share, c1a4.pair_graphic_share) == pytest.approx(
        (1 / 3, 0.0, 0.0)
    )
    # A1's buyers within 7 and within 28 days: C1 only (C2's purchase is 37 days old).
    # C2's taste (1, 1, 1 on dept 10, colour 9, print 1) . C1's (2, 3, 3 there; 1 on dept 20)
    # = 8, over the norms sqrt(3) * sqrt(23).
    expected = math.log1p(8 / math.sqrt(3 * 23))
    assert c2a1.pair_log_neighbour_sales_1w == pytest.approx(expected, rel=1e-5)
    assert c2a1.pair_log_neighbour_sales_4w == pytest.approx(expected, rel=1e-5)
    assert c1a1.pair_log_neighbour_sales_1w == pytest.approx(math.log(2), rel=1e-5)  # C1 . C1 = 1
    # Documented zeros: no history (C3), nobody bought it (A2), unknown customer or article.
    for row in (c3a1, c2a2, unknown_c, unknown_a):
        assert row.pair_log_neighbour_sales_1w == 0 and row.pair_log_neighbour_sales_4w == 0
    assert (unknown_a.pair_department_share, unknown_a.pair_colour_share) == (0, 0)


def test_taste_features_do_not_depend_on_the_chunk_size(
    shop_store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import services.ranker.features as features

    triples = [(c, a, 0.1 * i) for i, (c, a) in enumerate((c, a) for c in (C1, C2, C3) for a in (A1, A2, A3, A4))]
    whole = rows(shop_store, triples).to_numpy()
    monkeypatch.setattr(features, "TASTE_CHUNK_ROWS", 5)
    assert np.array_equal(rows(shop_store, triples).to_numpy(), whole)


def test_one_customers_rows_are_bit_identical_to_the_same_rows_in_a_batch(shop_store: FeatureStore) -> None:
    """A request (one customer) takes fast paths (candidate ranks without factorize, neighbour
    sales summed per entry): they must give exactly the batch path's numbers, which training
    and evaluation use."""
    rng = np.random.default_rng(0)
    arts = [*shop_store.article_ids, UNKNOWN_A]
    for customer in [*shop_store.customer_ids, UNKNOWN_C]:
        picked = [arts[i] for i in rng.integers(0, len(arts), 40)]
        scores = rng.normal(size=len(picked))
        scores[3] = scores[7]  # a tie
        sources = (rng.random((len(picked), 6)) * (rng.random((len(picked), 6)) < 0.4)).astype(np.float32)
        alone = compute_features(shop_store, [customer] * len(picked), picked, scores, sources)
        other = C1 if customer != C1 else C2
        batch = compute_features(
            shop_store,
            [customer] * len(picked) + [other] * 5,
            picked + picked[:5],
            np.r_[scores, scores[:5]],
            np.r_[sources, sources[:5]],
        )
        np.testing.assert_array_equal(alone, batch[: len(picked)])


def test_sorted_lookups_find_every_key_and_only_those() -> None:
    """The store's lookups (one search per key array, in the slice the queries span) against a
    plain dict: hits, misses between and outside the keys, and the -1 "no key" query."""
    from services.ranker.features import _lookup_sorted_many

    rng = np.random.default_rng(1)
    keys = np.unique(rng.integers(0, 10_000, 3_000))
    a, b = rng.random(len(keys)).astype(np.float32), rng.random(len(keys)).astype(np.float32)
    for query in (rng.integers(-1, 10_500, 5_000), keys[100:140] + 0, np.array([-1, -1]), np.array([keys[-1] + 1])):
        got_a, got_b = _lookup_sorted_many(keys, [a, b], query, [-5.0, 7.0])
        table = dict(zip(keys.tolist(), range(len(keys)), strict=True))
        want_a = np.array([a[table[q]] if q in table else -5.0 for q in query.tolist()], np.float32)
        want_b = np.array([b[table[q]] if q in table else 7.0 for q in query.tolist()], np.float32)
        np.testing.assert_array_equal(got_a, want_a)
        np.testing.assert_array_equal(got_b, want_b)
