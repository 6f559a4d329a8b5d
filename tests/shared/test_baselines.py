"""The four baselines on small hand-made histories whose right answers can be read off."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shared.baselines import (
    age_popular_recommendations,
    popular_articles,
    random_recommendations,
    repurchase_popular_recommendations,
    repurchase_ranking,
)

CUTOFF = pd.Timestamp("2020-09-16")


def history(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """(date, customer, article) rows in the loaders' dtypes."""
    frame = pd.DataFrame(rows, columns=["t_dat", "customer_id", "article_id"])
    frame["t_dat"] = pd.to_datetime(frame["t_dat"])
    frame["customer_id"] = frame["customer_id"].astype("str")
    frame["article_id"] = frame["article_id"].astype("str")
    return frame


# Last week before the cutoff is 2020-09-09 .. 2020-09-15.
#   in the week:  A x3 (c1, c2, c3), B x2 (c1, c4), C x2 (c2, c5), D x1 (c3)
#   before it:    E x5 (old best seller), F x1
#   on the cutoff (must be ignored: it is the label week): Z x9
WEEK = history(
    [
        ("2020-09-15", "c1", "A"),
        ("2020-09-14", "c2", "A"),
        ("2020-09-09", "c3", "A"),
        ("2020-09-10", "c1", "B"),
        ("2020-09-11", "c4", "B"),
        ("2020-09-12", "c2", "C"),
        ("2020-09-12", "c5", "C"),
        ("2020-09-13", "c3", "D"),
    ]
    + [("2020-09-08", f"o{i}", "E") for i in range(5)]
    + [("2020-08-01", "o9", "F")]
    + [("2020-09-16", f"z{i}", "Z") for i in range(9)]
)


def test_popular_counts_the_last_week_and_breaks_ties_by_article_id():
    # A=3, then B and C tie at 2 (B < C), then D=1. E (5 sales) is a day too old; Z is on the cutoff.
    assert popular_articles(WEEK, k=4, cutoff=CUTOFF) == ["A", "B", "C", "D"]


def test_popular_fills_a_short_week_with_all_time_best_sellers():
    # The week sold only 4 articles; all-time counts before the cutoff: E=5, A=3, B=2, C=2, D=1, F=1
    assert popular_articles(WEEK, k=6, cutoff=CUTOFF) == ["A", "B", "C", "D", "E", "F"]
    assert popular_articles(WEEK, k=50, cutoff=CUTOFF) == ["A", "B", "C", "D", "E", "F"]


def test_popular_default_cutoff_is_the_day_after_the_history():
    # Without a cutoff the window ends after the last row (2020-09-16): 2020-09-10..16,
    # where Z (9) leads and A loses its 2020-09-09 sale (A=2, tie with B and C).
    assert popular_articles(WEEK, k=4) == ["Z", "A", "B", "C"]


def test_age_popular_uses_the_band_then_global_and_global_for_unknown_age():
    customers = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3", "c4", "c5", "young", "nobody_age"],
            "age": np.array([22, 23, 52, 52, 52, 21, np.nan], dtype="float32"),
        }
    )
    customers["customer_id"] = customers["customer_id"].astype("str")
    recs = age_popular_recommendations(WEEK, customers, ["young", "c3", "nobody_age", "stranger"], k=4, cutoff=CUTOFF)
    # band 20-24 (c1, c2) bought A x2, B x1, C x1 -> A, B, C; then global fills D
    assert recs["young"] == ["A", "B", "C", "D"]
    # band 50-59 (c3, c4, c5) bought A, B, C, D once each -> A, B, C, D by id
    assert recs["c3"] == ["A", "B", "C", "D"]
    # unknown age and a customer missing from customers.csv get the global list
    assert recs["nobody_age"] == recs["stranger"] == popular_articles(WEEK, 4, CUTOFF)


def test_age_popular_band_order_differs_from_global():
    # Old customers love Y, young ones X; the global week has X x3 > Y x2.
    h = history(
        [
            ("2020-09-15", "y1", "X"),
            ("2020-09-15", "y2", "X"),
            ("2020-09-15", "y3", "X"),
            ("2020-09-15", "o1", "Y"),
            ("2020-09-15", "o2", "Y"),
        ]
    )
    customers = pd.DataFrame(
        {
            "customer_id": pd.array(["y1", "y2", "y3", "o1", "o2", "o3"], dtype="str"),
            "age": np.array([20, 21, 22, 65, 70, 66], dtype="float32"),
        }
    )
    recs = age_popular_recommendations(h, customers, ["o3", "y1"], k=2, cutoff=CUTOFF)
    assert recs == {"o3": ["Y", "X"], "y1": ["X", "Y"]}


def test_repurchase_ranks_most_recent_day_first_then_count():
    h = history(
        [
            ("2020-09-01", "c1", "old"),
            ("2020-09-01", "c1", "old"),
            ("2020-09-01", "c1", "old"),
            ("2020-09-14", "c1", "new"),
            ("2020-09-10", "c1", "twice"),
            ("2020-09-10", "c1", "twice"),
            ("2020-09-10", "c1", "once"),
            ("2020-08-01", "c1", "too_old"),  # 46 days before the cutoff: outside the 28-day window
            ("2020-09-16", "c1", "label_week"),  # on the cutoff: never visible
        ]
    )
    ranking = repurchase_ranking(h, ["c1"], cutoff=CUTOFF, window_days=28)
    # new (09-14) > twice (09-10, 2 rows) > once (09-10, 1 row) > old (09-01, even with 3 rows)
    assert ranking == {"c1": ["new", "twice", "once", "old"]}


def test_repurchase_popular_fills_with_popular_without_repeats():
    recs = repurchase_popular_recommendations(WEEK, ["c1", "c3", "new_customer"], k=5, cutoff=CUTOFF)
    # c1 bought A (09-15) then B (09-10); fill with popular A, B, C, D, E minus those
    assert recs["c1"] == ["A", "B", "C", "D", "E"]
    # c3 bought D (09-13) then A (09-09)
    assert recs["c3"] == ["D", "A", "B", "C", "E"]
    # no history: the popular list
    assert recs["new_customer"] == ["A", "B", "C", "D", "E"]


def test_repurchase_popular_truncates_to_k():
    h = history([("2020-09-15", "c1", f"a{i}") for i in range(20)])
    recs = repurchase_popular_recommendations(h, ["c1"], k=12, cutoff=CUTOFF)
    assert len(recs["c1"]) == 12 and len(set(recs["c1"])) == 12


def test_baselines_ignore_rows_on_or_after_the_cutoff():
    # Everything bought on the cutoff day is the label week: adding it must change nothing.
    before = WEEK[WEEK["t_dat"] < CUTOFF]
    customers = pd.DataFrame(
        {"customer_id": pd.array(["c1", "z1"], dtype="str"), "age": np.array([22, 30], dtype="float32")}
    )
    ids = ["c1", "z1"]
    assert popular_articles(WEEK, 12, CUTOFF) == popular_articles(before, 12, CUTOFF)
    assert age_popular_recommendations(WEEK, customers, ids, 12, CUTOFF) == age_popular_recommendations(
        before, customers, ids, 12, CUTOFF
    )
    assert repurchase_popular_recommendations(WEEK, ids, 12, CUTOFF) == repurchase_popular_recommendations(
        before, ids, 12, CUTOFF
    )


def test_random_is_deterministic_distinct_and_drawn_from_the_pool():
    pool = [f"{i:010d}" for i in range(1000)]
    first = random_recommendations(["a", "b"], pool, k=12, seed=7)
    assert first == random_recommendations(["a", "b"], pool, k=12, seed=7)
    assert first != random_recommendations(["a", "b"], pool, k=12, seed=8)
    for articles in first.values():
        assert len(articles) == 12 and len(set(articles)) == 12 and set(articles) <= set(pool)
    assert first["a"] != first["b"]


def test_random_with_a_small_pool_returns_the_whole_pool():
    recs = random_recommendations(["a"], ["x", "y", "y", "z"], k=12)
    assert sorted(recs["a"]) == ["x", "y", "z"]


@pytest.mark.parametrize("k", [1, 12, 500])
def test_every_baseline_returns_at_most_k_distinct_articles(k):
    customers = pd.DataFrame(
        {"customer_id": pd.array(["c1", "c2"], dtype="str"), "age": np.array([22, np.nan], dtype="float32")}
    )
    lists = [
        *age_popular_recommendations(WEEK, customers, ["c1", "c2"], k, CUTOFF).values(),
        *repurchase_popular_recommendations(WEEK, ["c1", "c2"], k, CUTOFF).values(),
        popular_articles(WEEK, k, CUTOFF),
    ]
    for articles in lists:
        assert 1 <= len(articles) <= k and len(set(articles)) == len(articles)
