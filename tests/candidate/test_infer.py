"""Threshold / top-k semantics, the exact index and each rule of the candidate filter."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from services.candidate.features import article_stats, article_table, build_feature_space
from services.candidate.index import ExactIndex, top_k
from services.candidate.infer import allowed_articles, price_mask, select
from services.candidate.settings import FilterConfig
from tests.candidate.conftest import CUTOFF, aid


def test_top_k_orders_by_score_then_position():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, -0.2]], np.float32)
    idx, sc = top_k(scores, 3)
    # 0.9 twice: position 1 before 3; then 0.5 at position 2
    assert idx.tolist() == [[1, 3, 2]]
    assert sc[0].tolist() == pytest.approx([0.9, 0.9, 0.5])


def test_exact_index_scores_are_dot_products_and_mask_removes_articles():
    emb = np.array([[1, 0], [0, 1], [0.6, 0.8]], np.float32)
    index = ExactIndex(emb)
    q = np.array([[0.8, 0.6]], np.float32)
    # scores: [0.8, 0.6, 0.48 + 0.48 = 0.96]
    idx, sc = index.search(q, 2)
    assert idx.tolist() == [[2, 0]] and sc[0] == pytest.approx([0.96, 0.8])
    idx, sc = index.search(q, 3, allowed=np.array([True, True, False]))
    # article 2 is filtered out: only 2 remain, the third slot is empty (-1, -inf)
    assert idx.tolist() == [[0, 1, -1]] and np.isneginf(sc[0, 2])


def test_select_keeps_scores_above_threshold_up_to_top_k():
    # three customers, results of a search for top_k + 1 = 4, best first
    idx = np.array([[5, 6, 7, 8], [5, 6, 7, 8], [5, 6, -1, -1]])
    scores = np.array(
        [
            [0.9, 0.8, 0.7, 0.6],  # 4 pass 0.5 > top_k 3: hits the cap, keeps 3
            [0.6, 0.4, 0.2, 0.1],  # 1 passes: keeps 1
            [0.2, 0.1, -np.inf, -np.inf],
        ],
        np.float32,
    )  # none passes: falls back
    keep, hit_cap, fell_back = select(idx, scores, top_k=3, threshold=0.5, fallback_k=1)
    assert keep.tolist() == [[True, True, True, False], [True, False, False, False], [True, False, False, False]]
    assert hit_cap.tolist() == [True, False, False]
    assert fell_back.tolist() == [False, False, True]
    # the fallback is capped by top_k too: fallback_k 12 with top_k 1 keeps 1
    keep, _, _ = select(idx[2:], scores[2:], top_k=1, threshold=0.5, fallback_k=12)
    assert keep.tolist() == [[True, False, False, False]]


def test_select_without_threshold_is_plain_top_k():
    idx = np.array([[1, 2, 3], [1, -1, -1]])
    scores = np.array([[-0.5, -0.6, -0.7], [0.1, -np.inf, -np.inf]], np.float32)
    keep, hit_cap, fell_back = select(idx, scores, top_k=2, threshold=None, fallback_k=5)
    assert keep.tolist() == [[True, True, False], [True, False, False]]
    assert hit_cap.tolist() == [True, False] and not fell_back.any()


def fake_model(toy):
    """What the filter needs from a loaded model: the feature space and the article table."""
    space = build_feature_space(toy.articles, toy.customers, toy.transactions, CUTOFF)
    return SimpleNamespace(space=space, article_table=article_table(space, toy.articles)), space


def test_not_sold_rule(toy):
    model, space = fake_model(toy)
    stats = article_stats(space.article_ids, toy.transactions, CUTOFF)
    # last sales before 09-16: a1 09-10, a2 09-03, a3 09-02, a4 09-15, a5 never.
    # 1 week back = since 09-09: a1, a4 only
    allowed = allowed_articles(model, stats, FilterConfig(not_sold_weeks=1), CUTOFF)
    assert allowed.tolist() == [True, False, False, True, False]
    # 2 weeks back = since 09-02: a1..a4
    assert allowed_articles(model, stats, FilterConfig(not_sold_weeks=2), CUTOFF).tolist() == [True] * 4 + [False]
    # switched off: everything
    assert allowed_articles(model, stats, FilterConfig(not_sold_weeks=None), CUTOFF).all()


def test_exclusion_rules(toy):
    model, space = fake_model(toy)
    stats = article_stats(space.article_ids, toy.transactions, CUTOFF)
    by_id = FilterConfig(not_sold_weeks=None, exclude_article_ids=["2", aid(3), "999"])  # unpadded ids work
    assert allowed_articles(model, stats, by_id, CUTOFF).tolist() == [True, False, False, True, True]
    by_attr = FilterConfig(
        not_sold_weeks=None, exclude_attributes={"index_name": ["Baby Sizes 50-98"], "colour_group_name": ["Red"]}
    )
    assert allowed_articles(model, stats, by_attr, CUTOFF).tolist() == [True, True, True, False, False]
    with pytest.raises(ValueError, match="cannot exclude by 'price'"):
        allowed_articles(model, stats, FilterConfig(exclude_attributes={"price": ["1"]}), CUTOFF)


def test_price_band_rule():
    mean_price = np.array([0.01, 0.02, 0.05, np.nan])
    band = np.array([[0.02, 0.03], [np.nan, np.nan]])
    # customer 0 paid 0.02-0.03; slack 1.5 -> keeps [0.0133, 0.045]: 0.02 only (and the unpriced one)
    m = price_mask(mean_price, band, slack=1.5)
    assert m.tolist() == [[False, True, False, True], [True, True, True, True]]


def test_price_band_from_history(toy):
    from services.candidate.features import customer_price_band

    band = customer_price_band(toy.transactions, np.array(["0" * 63 + "1", "0" * 63 + "4"]), CUTOFF)
    # customer 1 paid 0.02, 0.03, 0.02, 0.02 before the cutoff: p10 = 0.02, p90 = 0.027
    assert band.iloc[0]["p_lo"] == pytest.approx(0.02, abs=1e-6)
    assert band.iloc[0]["p_hi"] == pytest.approx(0.027, abs=1e-6)
    assert pd.isna(band.iloc[1]["p_lo"])


def test_one_mask_for_all_queries_scores_only_allowed_columns_with_the_same_answer() -> None:
    # The batch path scores the allowed columns only; it must answer exactly as masking the
    # full score matrix with -inf does: same positions, same order (ties by position), and
    # -1 / -inf padding when fewer articles are allowed than asked for.
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(50, 8)).astype(np.float32)
    emb[10] = emb[20]  # a tie, broken by position
    index = ExactIndex(emb)
    queries = rng.normal(size=(7, 8)).astype(np.float32)
    for allowed_share, k in ((0.6, 12), (0.1, 12), (0.0, 4)):
        allowed = rng.random(50) < allowed_share
        allowed[[10, 20]] = allowed_share > 0
        full = index.scores(queries)
        full[:, ~allowed] = -np.inf
        want_idx, want_sc = top_k(full, k)
        got_idx, got_sc = index.search(queries, k, allowed)
        assert got_idx.shape == (7, k)
        assert np.array_equal(got_idx, want_idx)
        assert np.allclose(got_sc, want_sc)  # -inf padding compares equal
        assert set(got_idx[got_idx >= 0].tolist()) <= set(np.flatnonzero(allowed).tolist())


def test_a_batch_searched_in_steps_answers_each_query_as_alone(monkeypatch) -> None:
    """A batch is scored SEARCH_ROWS queries at a time (memory): every query's top-k is what it
    gets searched alone, the not-sold mask and the padding past the allowed count included."""
    from services.candidate import index as index_module

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(60, 8)).astype(np.float32)
    index = ExactIndex(emb / np.linalg.norm(emb, axis=1, keepdims=True))
    allowed = rng.random(60) < 0.5
    queries = rng.normal(size=(7, 8)).astype(np.float32)
    monkeypatch.setattr(index_module, "SEARCH_ROWS", 3)
    for k in (5, 59):
        idx, sc = index.search(queries, k, allowed)
        for r in range(len(queries)):
            alone_idx, alone_sc = index.search(queries[r : r + 1], k, allowed)
            np.testing.assert_array_equal(idx[r], alone_idx[0])
            # one query alone is a matrix-vector product: the last bit of a cosine may differ
            np.testing.assert_allclose(sc[r], alone_sc[0], atol=1e-6)
        assert ((idx == -1) | allowed[np.maximum(idx, 0)]).all()
