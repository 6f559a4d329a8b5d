"""Training data: labels by hand, hard-negative down-sampling, customer-level validation split."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from services.ranker.dataset import build_training_data, downsample_negatives, validation_customers
from services.ranker.features import build_feature_store
from tests.ranker.conftest import A1, A2, A3, A4, C1, C2, C3, CUTOFF, hand_shop


def test_labels_by_hand() -> None:
    articles, customers, tx = hand_shop()
    # Label week from 2020-09-16: C3 bought A2 online (0.04), C1 bought A4 online (0.10).
    tx = pd.concat(
        [
            tx,
            pd.DataFrame(
                {
                    "t_dat": pd.to_datetime(["2020-09-18", "2020-09-23"]),  # C1 A1 in store; 09-23 is after the week
                    "customer_id": [C1, C1],
                    "article_id": [A1, A3],
                    "price": np.array([0.03, 0.05], dtype=np.float32),
                    "sales_channel_id": np.array([1, 2], dtype=np.int8),
                }
            ),
        ]
    )
    store = build_feature_store(tx, customers, articles, CUTOFF)
    cands = pd.DataFrame(
        {
            "customer_id": [C1, C1, C1, C2, C3, C3],
            "article_id": [A1, A3, A4, A1, A2, A1],
            "score": [0.9, 0.8, 0.1, 0.5, 0.4, 0.3],
        }
    )
    data = build_training_data(cands, tx, store, CUTOFF)
    # C2 bought nothing that week: dropped (not scored by the evaluation either).
    assert C2 not in set(data.customer_ids) and len(data) == 5
    got = {(c, a): i for i, (c, a) in enumerate(zip(data.customer_ids, data.article_ids, strict=True))}
    purchase = {k: data.labels["purchase"][i] for k, i in got.items()}
    assert purchase == {(C1, A1): 1, (C1, A3): 0, (C1, A4): 1, (C3, A2): 1, (C3, A1): 0}  # A3 on 09-23: outside
    assert data.labels["online"][got[(C1, A1)]] == 0 and data.labels["online"][got[(C1, A4)]] == 1
    # revenue = log1p(spent / shop mean price before the cutoff 0.03): 0.10 -> log1p(3.333)
    assert data.labels["revenue"][got[(C1, A4)]] == pytest.approx(math.log1p(0.10 / 0.03), rel=1e-5)
    assert data.labels["revenue"][got[(C1, A3)]] == 0
    assert data.truth == {C1: {A1, A4}, C3: {A2}}


def test_store_of_another_cutoff_is_refused() -> None:
    articles, customers, tx = hand_shop()
    store = build_feature_store(tx, customers, articles, CUTOFF)
    with pytest.raises(ValueError, match="cutoff"):
        build_training_data(
            pd.DataFrame({"customer_id": [C1], "article_id": [A1], "score": [1.0]}),
            tx,
            store,
            pd.Timestamp("2020-09-09").date(),
        )


def test_downsampling_keeps_every_positive() -> None:
    labels = np.array([1] * 10 + [0] * 990, dtype=np.float32)
    kept = downsample_negatives(labels, 5.0, seed=0)
    assert (labels[kept] == 1).sum() == 10 and (labels[kept] == 0).sum() == 50  # 5 per positive
    assert len(np.unique(kept)) == len(kept)
    assert len(downsample_negatives(labels, 1000.0, seed=0)) == 1000  # fewer negatives than allowed


def test_validation_split_is_per_customer() -> None:
    ids = np.array([f"{i % 50:064x}" for i in range(1000)], dtype=object)
    held = validation_customers(ids, 0.2, seed=1)
    assert not (set(ids[held]) & set(ids[~held]))
    assert 3 <= len(set(ids[held])) <= 20


def test_validation_split_is_the_sorted_draw_whatever_the_id_column() -> None:
    """The draw is over the distinct ids in sorted order: the same customers are held out from
    an object array and from the loaders' arrow-backed strings, in any row order."""
    ids = np.array([f"{(i * 7) % 50:064x}" for i in range(1000)], dtype=object)
    unique = np.unique(ids.astype(str))
    expected = set(unique[np.random.default_rng(1).random(len(unique)) < 0.2])
    for column in (ids, pd.Series(ids, dtype="str"), ids[::-1].copy()):
        held = validation_customers(column, 0.2, seed=1)
        assert set(np.asarray(column, dtype=object)[held]) == expected


def test_row_selection_keeps_validation_lists_whole_and_samples_training_negatives() -> None:
    from services.ranker.dataset import RowSelection

    rng = np.random.default_rng(0)
    customers = pd.Series([f"{i // 40:064x}" for i in range(4_000)], dtype="str")  # 100 lists of 40
    purchase = (rng.random(4_000) < 0.05).astype(np.float32)
    rows, is_val = RowSelection(0.2, 3.0, seed=0).rows(customers, purchase)
    held = validation_customers(customers, 0.2, seed=0)
    assert (np.diff(rows) > 0).all() and is_val.tolist() == held[rows].tolist()
    assert set(rows[is_val]) == set(np.flatnonzero(held))  # every validation row
    train = rows[~is_val]
    positives = np.flatnonzero(~held & (purchase > 0))
    assert set(positives) <= set(train)  # every training purchase
    assert (purchase[train] == 0).sum() == min(3 * len(positives), int((~held & (purchase == 0)).sum()))
    everything, _ = RowSelection(0.2, None, seed=0).rows(customers, purchase)  # listwise: whole lists
    assert everything.tolist() == list(range(4_000))


def test_labels_are_the_weeks_purchases_of_each_candidate() -> None:
    """Labels by integer keys against a plain join of the week's summed purchases: repeated
    purchases add up, one online purchase makes the pair online, unbought pairs are zeros."""
    from services.ranker.dataset import candidate_labels

    rng = np.random.default_rng(0)
    customers = [f"{i:064x}" for i in range(30)]
    articles = [f"{i:010d}" for i in range(40)]
    week = pd.DataFrame(
        {
            "customer_id": pd.Series(rng.choice(customers[:20], 300), dtype="str"),
            "article_id": pd.Series(rng.choice(articles[:30], 300), dtype="str"),
            "price": rng.random(300).astype(np.float32),
            "sales_channel_id": rng.choice([1, 2], 300).astype(np.int8),
        }
    )
    candidates = pd.DataFrame(
        {"customer_id": rng.choice(customers, 2_000), "article_id": rng.choice(articles, 2_000)}
    ).astype("str")
    bought = week.assign(online=week["sales_channel_id"] == 2, spent=week["price"].astype(np.float64))
    summed = bought.groupby(["customer_id", "article_id"]).agg(online=("online", "max"), spent=("spent", "sum"))
    joined = candidates.join(summed, on=["customer_id", "article_id"])
    labels = candidate_labels(candidates, week, mean_price=0.5)
    assert labels["purchase"].tolist() == joined["spent"].notna().astype(np.float32).tolist()
    assert 0 < labels["purchase"].sum() < len(candidates)
    np.testing.assert_array_equal(labels["online"], joined["online"].fillna(False).astype(np.float32))
    np.testing.assert_allclose(labels["revenue"], np.log1p(joined["spent"].fillna(0.0) / 0.5), rtol=1e-6)


def test_kept_training_rows_have_the_features_of_their_whole_list() -> None:
    """Rows left out of training (down-sampled negatives) still count in the rank and the best
    score of their customer's list: a kept row's features are the ones it has in the full list,
    which is what serving computes."""
    from services.ranker.dataset import RowSelection

    articles, customers, tx = hand_shop()
    label = pd.DataFrame(
        {
            "t_dat": pd.to_datetime(["2020-09-17"] * 3),
            "customer_id": [C1, C2, C3],
            "article_id": [A4, A2, A3],
            "price": np.array([0.1, 0.1, 0.1], dtype=np.float32),
            "sales_channel_id": np.array([2, 1, 1], dtype=np.int8),
        }
    )
    tx = pd.concat([tx, label], ignore_index=True)
    store = build_feature_store(tx, customers, articles, CUTOFF)
    rng = np.random.default_rng(0)
    cands = pd.DataFrame(
        {
            "customer_id": [c for c in (C1, C2, C3) for _ in range(4)],
            "article_id": [A1, A2, A3, A4] * 3,
            "score": rng.random(12),
        }
    )
    whole = build_training_data(cands, tx, store, CUTOFF)
    # no validation customer, one negative per purchase: most negatives are left out
    part = build_training_data(cands, tx, store, CUTOFF, selection=RowSelection(0.0, 1.0, seed=0))
    assert 3 <= len(part) < len(whole) and part.negatives_sampled and not part.is_validation.any()
    index = {(c, a): i for i, (c, a) in enumerate(zip(whole.customer_ids, whole.article_ids, strict=True))}
    rows = [index[(c, a)] for c, a in zip(part.customer_ids, part.article_ids, strict=True)]
    np.testing.assert_array_equal(part.features, whole.features[rows])
