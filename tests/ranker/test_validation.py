"""The fast validation figures equal the reference ones (pandas ranking + pipeline.ranking_metrics, sklearn)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.ranking_metrics import map_at_k
from services.ranker.validation import ValidationLists, auc


def ranked_lists(customer_ids: np.ndarray, article_ids: np.ndarray, score: np.ndarray, k: int = 12) -> dict:
    """The reference: customer -> their article ids sorted by score (best first, ties in row order), top k."""
    frame = pd.DataFrame({"c": customer_ids.astype(str), "a": article_ids.astype(str), "s": score})
    frame = frame.sort_values(["c", "s"], ascending=[True, False], kind="stable")
    frame = frame[frame.groupby("c", sort=False).cumcount() < k]
    return {c: list(g) for c, g in frame.groupby("c", sort=False)["a"]}


def _lists(seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, set[str]]]:
    rng = np.random.default_rng(seed)
    customers, articles = [], []
    for c in range(300):
        n = int(rng.integers(1, 40))
        customers += [f"c{c:03d}"] * n
        articles += [f"a{a:03d}" for a in rng.choice(200, n, replace=False)]
    order = rng.permutation(len(customers))  # rows of a customer need not be adjacent
    customer_ids, article_ids = np.array(customers, dtype=object)[order], np.array(articles, dtype=object)[order]
    truth: dict[str, set[str]] = {}
    for c in range(0, 330, 2):  # some buyers have no rows, some customers with rows bought nothing
        truth[f"c{c:03d}"] = {f"a{a:03d}" for a in rng.choice(200, int(rng.integers(0, 15)), replace=False)}
    return customer_ids, article_ids, truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_equals_the_reference_ranking_ties_included(seed: int) -> None:
    customer_ids, article_ids, truth = _lists(seed)
    rng = np.random.default_rng(seed + 10)
    lists = ValidationLists(customer_ids, article_ids, truth)
    for scores in (rng.random(len(customer_ids)), np.round(rng.random(len(customer_ids)), 1)):
        expected = map_at_k(ranked_lists(customer_ids, article_ids, scores), truth, 12)
        assert expected > 0
        assert lists.map_at_k(scores) == pytest.approx(expected, abs=1e-12)


def test_map_refuses_a_list_that_repeats_an_article() -> None:
    with pytest.raises(ValueError, match="repeats"):
        ValidationLists(np.array(["c", "c"]), np.array(["a", "a"]), {"c": {"a"}})


def test_auc_equals_sklearn_with_ties_and_is_nan_for_one_class() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(5000) < 0.1).astype(np.float32)
    for scores in (rng.random(5000), np.round(rng.random(5000), 2)):
        assert auc(labels, scores) == pytest.approx(roc_auc_score(labels > 0, scores), abs=1e-12)
    assert np.isnan(auc(np.zeros(10), rng.random(10)))
