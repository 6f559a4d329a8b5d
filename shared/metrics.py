"""Ranking metrics of the H&M competition: MAP@12 and recall@k.

Conventions (the competition's):

- Only customers with at least one purchase in the label week are scored: the mean runs
  over the keys of ``truth``. Predictions for other customers are ignored; a scored
  customer with no prediction scores 0.
- AP@k = (1 / min(k, |truth|)) * sum_{i <= k} P(i) * rel(i), where P(i) is the precision
  of the first i predictions and rel(i) is 1 when the i-th prediction was bought.
- A prediction list may repeat an article; repeats count once (the first occurrence
  keeps its rank), so a list cannot earn credit twice for one purchase.

Everything is plain Python over dicts and sets: per customer the work is a C-level
de-duplication (``dict.fromkeys``) plus a loop over the first k items, so 100k customers
with 500 predictions each score in a few seconds.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def dedupe(predicted: Iterable[str]) -> list[str]:
    """``predicted`` without repeats, first occurrence kept (order preserved)."""
    return list(dict.fromkeys(predicted))


def _top_unique(predicted: Sequence[str], k: int) -> list[str]:
    """The first ``k`` distinct items of ``predicted``.

    Lists almost never repeat items, so the common case is one slice and one set.
    """
    head = list(predicted[:k])
    if len(set(head)) == len(head):
        return head
    return dedupe(predicted)[:k]


def apk(actual: set[str] | Iterable[str], predicted: Sequence[str], k: int = 12) -> float:
    """Average precision at ``k`` of one ranked list against the set of bought articles."""
    truth = actual if isinstance(actual, set | frozenset) else set(actual)
    if not truth or k <= 0:
        return 0.0
    hits = 0
    score = 0.0
    for i, article in enumerate(_top_unique(predicted, k), start=1):
        if article in truth:
            hits += 1
            score += hits / i
    return score / min(k, len(truth))


def map_at_k(
    predictions: Mapping[str, Sequence[str]], truth: Mapping[str, set[str]], k: int = 12
) -> float:
    """Mean AP@k over every customer in ``truth`` (missing prediction = 0)."""
    if not truth:
        return 0.0
    empty: list[str] = []
    total = sum(apk(bought, predictions.get(customer, empty), k) for customer, bought in truth.items())
    return total / len(truth)


def _recall_of_list(truth: set[str], predicted: Sequence[str], ks: Sequence[int]) -> list[float]:
    """|top-k ∩ truth| / |truth| for each k, from one de-duplicated pass."""
    if not predicted:
        return [0.0] * len(ks)
    ranked = dict.fromkeys(predicted)  # preserves order, drops repeats
    found = [a for a in truth if a in ranked]
    if not found:
        return [0.0] * len(ks)
    order = list(ranked)
    positions = [order.index(a) for a in found]  # 0-based rank of each bought article
    return [sum(1 for p in positions if p < k) / len(truth) for k in ks]


def recall_at_k(
    predictions: Mapping[str, Sequence[str]], truth: Mapping[str, set[str]], k: int = 12
) -> float:
    """Mean over customers in ``truth`` of |top-k ∩ truth| / |truth| (missing prediction = 0)."""
    if not truth:
        return 0.0
    empty: list[str] = []
    total = sum(_recall_of_list(bought, predictions.get(c, empty), [k])[0] for c, bought in truth.items())
    return total / len(truth)


def evaluate_rankings(
    predictions: Mapping[str, Sequence[str]],
    truth: Mapping[str, set[str]],
    map_k: int = 12,
    recall_ks: Sequence[int] = (12, 100, 500),
) -> dict[str, float]:
    """MAP@map_k and recall at every k in ``recall_ks``, in one pass over the customers.

    Returns e.g. ``{"map@12": 0.021, "recall@12": 0.05, "recall@100": 0.2, "recall@500": 0.4}``.
    """
    ks = list(recall_ks)
    ap_total = 0.0
    recall_totals = [0.0] * len(ks)
    empty: list[str] = []
    for customer, bought in truth.items():
        predicted = predictions.get(customer, empty)
        ap_total += apk(bought, predicted, map_k)
        for j, r in enumerate(_recall_of_list(bought, predicted, ks)):
            recall_totals[j] += r
    n = len(truth)
    result = {f"map@{map_k}": ap_total / n if n else 0.0}
    for k, total in zip(ks, recall_totals, strict=True):
        result[f"recall@{k}"] = total / n if n else 0.0
    return result
