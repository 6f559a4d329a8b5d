"""Ranking metrics of the H&M competition: MAP@12 and recall@k.

Conventions (the competition's):

- Only customers with at least one purchase in the label week are scored: the mean runs
  over the keys of ``truth``. Predictions for other customers are ignored; a scored
  customer with no prediction scores 0.
- AP@k = (1 / min(k, |truth|)) * sum_{i <= k} P(i) * rel(i), where P(i) is the precision
  of the first i predictions and rel(i) is 1 when the i-th prediction was bought.
- A prediction list may repeat an article; repeats count once (the first occurrence
  keeps its rank), so a list cannot earn credit twice for one purchase.

Per customer the work is a C-level de-duplication (``dict.fromkeys``) and set look-ups of
the handful of bought articles, so 100k customers with 500 predictions score in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np


def hit_ranks(truth: set[str] | frozenset[str], predicted: Sequence[str]) -> list[int]:
    """0-based ranks, after de-duplication, of the bought articles found in ``predicted``; sorted.

    ``dict.fromkeys`` de-duplicates in C keeping first occurrences; only when something was
    bought is the ranked list materialised to look the hits up.
    """
    if not predicted:
        return []
    ranked = dict.fromkeys(predicted)
    found = [article for article in truth if article in ranked]
    if not found:
        return []
    order = list(ranked)
    return sorted(order.index(article) for article in found)


def _ap_from_ranks(ranks: list[int], n_truth: int, k: int) -> float:
    """AP@k from the sorted ranks of the hits: the j-th hit (1-based) at rank r adds j / (r + 1)."""
    if n_truth == 0 or k <= 0:
        return 0.0
    score = sum(j / (r + 1) for j, r in enumerate((r for r in ranks if r < k), start=1))
    return score / min(k, n_truth)


def apk(actual: set[str] | Iterable[str], predicted: Sequence[str], k: int = 12) -> float:
    """Average precision at ``k`` of one ranked list against the set of bought articles."""
    truth = actual if isinstance(actual, set | frozenset) else set(actual)
    return _ap_from_ranks(hit_ranks(truth, predicted), len(truth), k)


def map_at_k(predictions: Mapping[str, Sequence[str]], truth: Mapping[str, set[str]], k: int = 12) -> float:
    """Mean AP@k over every customer in ``truth`` (missing prediction = 0)."""
    return evaluate_rankings(predictions, truth, map_k=k, recall_ks=())[f"map@{k}"]


def recall_at_k(predictions: Mapping[str, Sequence[str]], truth: Mapping[str, set[str]], k: int = 12) -> float:
    """Mean over customers in ``truth`` of |top-k ∩ truth| / |truth| (missing prediction = 0)."""
    return evaluate_rankings(predictions, truth, map_k=k, recall_ks=(k,))[f"recall@{k}"]


def per_customer_metrics(
    predictions: Mapping[str, Sequence[str]],
    truth: Mapping[str, set[str]],
    map_k: int = 12,
    recall_ks: Sequence[int] = (12, 100, 500),
) -> dict[str, np.ndarray]:
    """AP@map_k and recall at every k in ``recall_ks`` of every customer in ``truth`` (in its
    order; 0 without a prediction or a purchase), in one pass over the customers.

    Returns e.g. ``{"map@12": array([...]), "recall@12": array([...]), ...}``; the means are
    :func:`evaluate_rankings`, the per-customer values feed paired comparisons.
    """
    ks = list(recall_ks)
    n = len(truth)
    ap = np.zeros(n, dtype=np.float64)
    recalls = np.zeros((len(ks), n), dtype=np.float64)
    empty: list[str] = []
    for i, (customer, bought) in enumerate(truth.items()):
        if not bought:
            continue
        ranks = hit_ranks(bought, predictions.get(customer, empty))
        if not ranks:
            continue
        ap[i] = _ap_from_ranks(ranks, len(bought), map_k)
        for j, k in enumerate(ks):
            recalls[j, i] = sum(1 for r in ranks if r < k) / len(bought)
    return {f"map@{map_k}": ap, **{f"recall@{k}": recalls[j] for j, k in enumerate(ks)}}


def evaluate_rankings(
    predictions: Mapping[str, Sequence[str]],
    truth: Mapping[str, set[str]],
    map_k: int = 12,
    recall_ks: Sequence[int] = (12, 100, 500),
) -> dict[str, float]:
    """MAP@map_k and recall at every k in ``recall_ks``: the means of :func:`per_customer_metrics`.

    Returns e.g. ``{"map@12": 0.021, "recall@12": 0.05, "recall@100": 0.2, "recall@500": 0.4}``.
    """
    return means(per_customer_metrics(predictions, truth, map_k, recall_ks))


def means(per_customer: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Each per-customer metric averaged over the customers (0.0 when there are none)."""
    return {name: float(values.mean()) if len(values) else 0.0 for name, values in per_customer.items()}


def average_precisions(
    predictions: Mapping[str, Sequence[str]], truth: Mapping[str, set[str]], k: int = 12
) -> np.ndarray:
    """AP@k of every customer in ``truth`` (in its order); their mean is :func:`map_at_k`."""
    return per_customer_metrics(predictions, truth, map_k=k, recall_ks=())[f"map@{k}"]


def paired_ratio_interval(
    numerator: np.ndarray, denominator: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """mean(numerator) / mean(denominator) and its bootstrap interval, resampling customers.

    The two arrays hold two methods' AP for the same customers, so one resample draws the same
    customers for both: the interval says how much of a MAP@12 ratio one week's customers can
    tell apart from chance (with ~1,500 customers, about +-9 % around a ratio of 1).
    """
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    if len(numerator) != len(denominator) or len(numerator) == 0 or denominator.sum() == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(numerator), size=(n_boot, len(numerator)))
    num, den = numerator[draws].sum(axis=1), denominator[draws].sum(axis=1)
    # A resample in which the denominator method hit nothing has an unbounded ratio: counted
    # as +inf (a few buyers' weeks, e.g. 76 on `sparse`, do that), never as num / 1e-12.
    ratios = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.inf)
    tail = (1.0 - level) / 2.0 * 100.0
    # inverted_cdf picks resampled values (interpolating between two +inf would give NaN)
    low, high = np.percentile(ratios, [tail, 100.0 - tail], method="inverted_cdf")
    return float(numerator.sum() / denominator.sum()), float(low), float(high)
