"""MAP@12 and recall@k against cases worked out by hand, plus properties that must always hold."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ranking_metrics import apk, evaluate_rankings, map_at_k, recall_at_k


def test_apk_hits_at_ranks_1_and_3_of_two_bought():
    # bought {a, b}; predicted [a, x, b]: rel = 1, 0, 1
    # P(1) = 1/1, P(3) = 2/3  ->  (1 + 2/3) / min(12, 2) = (5/3) / 2 = 5/6
    assert apk({"a", "b"}, ["a", "x", "b"]) == pytest.approx(5 / 6)


def test_apk_normalises_by_min_k_and_truth_size():
    # 15 articles bought, one hit at rank 2: P(2) = 1/2; divide by min(12, 15) = 12 -> 1/24
    bought = {f"t{i}" for i in range(15)}
    assert apk(bought, ["x", "t3", "y"]) == pytest.approx(1 / 24)


def test_apk_ignores_hits_after_rank_k():
    # hit only at rank 13: outside the top 12 -> 0; with k = 13: P(13) = 1/13, / min(13, 1) = 1/13
    predicted = [f"x{i}" for i in range(12)] + ["a"]
    assert apk({"a"}, predicted, k=12) == 0.0
    assert apk({"a"}, predicted, k=13) == pytest.approx(1 / 13)


def test_apk_counts_a_repeated_prediction_once():
    # predicted [a, a, b] de-duplicates to [a, b]: P(1) = 1, P(2) = 2/2 -> (1 + 1) / 2 = 1.
    # Counting the repeat would give rank 3 to b: (1 + 2/3) / 2 = 5/6; and a list of twelve
    # 'a' must not score 12 hits for one purchase.
    assert apk({"a", "b"}, ["a", "a", "b"]) == pytest.approx(1.0)
    assert apk({"a"}, ["a"] * 12) == pytest.approx(1.0)
    assert apk({"a", "b"}, ["a"] * 12) == pytest.approx(0.5)
    # [x, x, y, a] de-duplicates to [x, y, a]: a is rank 3, P(3) = 1/3 -> AP = 1/3 (not 1/4)
    assert apk({"a"}, ["x", "x", "y", "a"]) == pytest.approx(1 / 3)


def test_apk_of_empty_inputs_is_zero():
    assert apk(set(), ["a"]) == 0.0
    assert apk({"a"}, []) == 0.0


def test_map_at_12_is_the_mean_over_customers_with_purchases():
    # c1: bought {a}, predicted [x, a]        -> P(2) = 1/2, / 1           = 0.5
    # c2: bought {b, c, d}, predicted [b, c]  -> (1/1 + 2/2) / min(12, 3)  = 2/3
    # c3: bought {e}, no prediction           -> 0
    # c4: predicted but bought nothing        -> not scored
    # MAP = (0.5 + 2/3 + 0) / 3 = 7/18
    truth = {"c1": {"a"}, "c2": {"b", "c", "d"}, "c3": {"e"}}
    predictions = {"c1": ["x", "a"], "c2": ["b", "c"], "c4": ["a", "b"]}
    assert map_at_k(predictions, truth) == pytest.approx(7 / 18)


def test_recall_at_k_hand_worked():
    # c1: bought {a, b, c}, top-2 of [a, x, b] = [a, x] -> 1/3; top-3 -> 2/3
    # c2: bought {d}, predicted [d]                  -> 1 at both k
    # recall@2 = (1/3 + 1) / 2 = 2/3; recall@3 = (2/3 + 1) / 2 = 5/6
    truth = {"c1": {"a", "b", "c"}, "c2": {"d"}}
    predictions = {"c1": ["a", "x", "b"], "c2": ["d"]}
    assert recall_at_k(predictions, truth, k=2) == pytest.approx(2 / 3)
    assert recall_at_k(predictions, truth, k=3) == pytest.approx(5 / 6)


def test_recall_counts_ranks_after_deduplication():
    # [a, a, b] de-duplicates to [a, b]: b is rank 2, inside the top 2 -> recall@2 = 2/2 = 1
    assert recall_at_k({"c": ["a", "a", "b"]}, {"c": {"a", "b"}}, k=2) == pytest.approx(1.0)


def test_evaluate_rankings_agrees_with_the_single_metrics():
    truth = {"c1": {"a", "b"}, "c2": {"c"}, "c3": {"z"}}
    predictions = {"c1": ["b", "q", "a", "r"], "c2": ["q", "r", "c"], "c3": []}
    result = evaluate_rankings(predictions, truth, map_k=12, recall_ks=(1, 3))
    assert result == {
        "map@12": pytest.approx(map_at_k(predictions, truth)),
        "recall@1": pytest.approx(recall_at_k(predictions, truth, k=1)),
        "recall@3": pytest.approx(recall_at_k(predictions, truth, k=3)),
    }
    # c1: (1/1 + 2/3) / 2 = 5/6; c2: (1/3) / 1 = 1/3; c3: 0 -> MAP = (5/6 + 1/3) / 3 = 7/18
    assert result["map@12"] == pytest.approx(7 / 18)


# --- properties -------------------------------------------------------------------------

article = st.text(alphabet="abcdefgh", min_size=1, max_size=2)
truth_sets = st.sets(article, min_size=1, max_size=15)
truths = st.dictionaries(st.text(alphabet="xyz", min_size=1, max_size=3), truth_sets, min_size=1, max_size=6)


@given(truths)
def test_property_perfect_list_scores_one(truth):
    # Every bought article first (at most 12 needed: AP divides by min(12, |truth|)).
    predictions = {c: sorted(bought) for c, bought in truth.items()}
    assert map_at_k(predictions, truth) == pytest.approx(1.0)
    assert recall_at_k(predictions, truth, k=15) == pytest.approx(1.0)


@given(truths, st.lists(st.text(alphabet="PQRS", min_size=1, max_size=2), max_size=30))
def test_property_disjoint_list_scores_zero(truth, other):
    # Articles over a different alphabet can never have been bought.
    predictions = {c: list(other) for c in truth}
    assert map_at_k(predictions, truth) == 0.0
    assert recall_at_k(predictions, truth, k=12) == 0.0


@given(
    truths, st.dictionaries(st.text(alphabet="uvw", min_size=1, max_size=3), st.lists(article, max_size=12), max_size=5)
)
def test_property_customers_without_purchases_do_not_change_the_score(truth, extra_predictions):
    # Customers absent from truth (they bought nothing in the week) are never scored.
    predictions = {c: sorted(bought)[::-1] + ["a"] for c, bought in truth.items()}
    with_extra = {**predictions, **extra_predictions}
    assert map_at_k(with_extra, truth) == pytest.approx(map_at_k(predictions, truth))
    assert recall_at_k(with_extra, truth) == pytest.approx(recall_at_k(predictions, truth))


@given(
    st.sets(article, min_size=1, max_size=7),
    st.lists(st.text(alphabet="PQ", min_size=1), min_size=1, max_size=5, unique=True),
)
def test_property_order_matters(bought, misses):
    # Moving every miss ahead of the hits lowers AP (strictly: each hit's precision drops)
    # but leaves recall@12 unchanged, since all (<= 7 + 5) items fit in the top 12.
    hits = sorted(bought)
    good, bad = hits + misses, misses + hits
    assert apk(bought, bad) < apk(bought, good) == pytest.approx(1.0)
    assert recall_at_k({"c": bad}, {"c": bought}) == recall_at_k({"c": good}, {"c": bought}) == 1.0


@settings(max_examples=50)
@given(truth_sets, st.lists(article, max_size=20))
def test_property_scores_are_between_zero_and_one(bought, predicted):
    assert 0.0 <= apk(bought, predicted) <= 1.0
    assert 0.0 <= recall_at_k({"c": predicted}, {"c": bought}, k=12) <= 1.0


def test_scoring_50k_customers_with_500_predictions_takes_seconds():
    # The evaluation scores every customer of the label week; at real scale ~70k customers
    # with 500 candidates each. Deterministic lists: customer i bought i%1000 and i%1000+1.
    # A guard against accidentally quadratic scoring, not a benchmark (that is
    # benchmarks/evaluation_speed.py): ~1.5 s on an idle 2-core machine.
    n = 50_000
    pool = [f"{i:010d}" for i in range(3000)]
    truth = {f"c{i}": {pool[i % 1000], pool[i % 1000 + 1]} for i in range(n)}
    predictions = {f"c{i}": pool[i % 7 : i % 7 + 500] for i in range(n)}
    start = time.perf_counter()
    result = evaluate_rankings(predictions, truth)
    assert time.perf_counter() - start < 20.0  # generous: CI machines are shared
    assert 0.0 < result["recall@500"] <= 1.0


def test_average_precisions_mean_is_map_and_paired_interval_brackets_the_ratio() -> None:
    import numpy as np

    from pipeline.ranking_metrics import average_precisions, map_at_k, paired_ratio_interval

    truth = {"c1": {"a"}, "c2": {"b", "c"}, "c3": {"z"}}
    preds = {"c1": ["a", "x"], "c2": ["x", "c", "b"]}
    aps = average_precisions(preds, truth, 12)
    assert aps.tolist() == [1.0, (1 / 2 + 2 / 3) / 2, 0.0]  # c3 has no prediction: 0
    assert aps.mean() == map_at_k(preds, truth, 12)
    rng = np.random.default_rng(1)
    base = rng.random(2000)
    ratio, low, high = paired_ratio_interval(base * 1.2, base)
    assert ratio == low == high == 1.2 or (low <= 1.2 <= high and high - low < 1e-9)
    noisy = base * rng.uniform(0.5, 1.7, 2000)  # mean ratio ~1.1, noisy per customer
    ratio, low, high = paired_ratio_interval(noisy, base)
    assert low < ratio < high and high - low > 0.02
    assert np.isnan(paired_ratio_interval(base, np.zeros(2000))[0])


def test_ratio_interval_is_unbounded_when_resamples_can_miss_every_hit():
    from pipeline.ranking_metrics import paired_ratio_interval

    # the denominator method hit one customer in 50: about 36 % of resamples miss it (0.98^50)
    num = np.full(50, 0.1)
    den = np.zeros(50)
    den[0] = 1.0
    ratio, low, high = paired_ratio_interval(num, den)
    assert ratio == pytest.approx(5.0 / 1.0) and np.isinf(high) and np.isfinite(low)
