"""Property tests of ranking: the output is a permutation of a subset of the input, scores are
finite and sorted, and its length is min(k, n) (n counting distinct articles)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ranker.serving import LoadedRanker
from tests.ranker.conftest import A1, A2, A3, A4, C1, C2, C3, CUTOFF, hand_shop, random_model

_RANKER: LoadedRanker | None = None


def ranker() -> LoadedRanker:
    global _RANKER
    if _RANKER is None:
        from services.ranker.features import build_feature_store

        articles, customers, tx = hand_shop()
        store = build_feature_store(tx, customers, articles, CUTOFF)
        _RANKER = LoadedRanker(
            "prop", random_model(seed=5), store, {"purchase": 1.0, "online": 0.5, "revenue": 0.2}, {}
        )
    return _RANKER


article_ids = st.one_of(st.sampled_from([A1, A2, A3, A4]), st.integers(1, 10**10 - 1).map(lambda i: f"{i:010d}"))
# The whole finite float range: a caller may send 3.3e271 (found by the e2e fuzzer).
scores = st.floats(allow_nan=False, allow_infinity=False)
customers = st.one_of(st.sampled_from([C1, C2, C3]), st.text("0123456789abcdef", min_size=64, max_size=64))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(customer=customers, items=st.lists(st.tuples(article_ids, scores), max_size=60), k=st.integers(1, 80))
def test_ranked_output_is_a_permutation_of_a_subset(customer: str, items: list[tuple[str, float]], k: int) -> None:
    ids = [a for a, _ in items]
    out = ranker().rank(customer, ids, [s for _, s in items], k)
    distinct = set(ids)
    assert len(out.article_ids) == min(k, len(distinct))
    assert len(set(out.article_ids)) == len(out.article_ids)  # no repeats
    assert set(out.article_ids) <= distinct  # nothing invented
    assert np.isfinite(out.scores).all()
    assert all(np.isfinite(v).all() and len(v) == len(out.article_ids) for v in out.task_scores.values())
    assert (np.diff(out.scores) <= 1e-12).all()  # best first


@settings(max_examples=60, deadline=None)
@given(items=st.lists(st.tuples(article_ids, scores), min_size=1, max_size=40, unique_by=lambda t: t[0]))
def test_full_ranking_is_a_permutation_and_order_of_input_does_not_matter(items: list[tuple[str, float]]) -> None:
    ids, sc = [a for a, _ in items], [s for _, s in items]
    forward = ranker().rank(C1, ids, sc, len(ids))
    backward = ranker().rank(C1, ids[::-1], sc[::-1], len(ids))
    assert sorted(forward.article_ids) == sorted(ids)
    assert np.allclose(sorted(forward.scores), sorted(backward.scores))
