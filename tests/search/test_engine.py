"""The search engine's scoring pieces by hand: the served reciprocal-rank fusion and top_indices."""

from __future__ import annotations

import numpy as np

from services.search.engine import reciprocal_rank_fusion, top_indices


def test_reciprocal_rank_fusion_by_hand() -> None:
    # ranks [1, 3, 2] and [3, 1, 2] with k=1: [1/2+1/4, 1/4+1/2, 1/3+1/3] = [0.75, 0.75, 0.6667]
    fused = reciprocal_rank_fusion([np.array([0.9, 0.1, 0.5]), np.array([0.2, 0.8, 0.6])], [1, 1], k=1)
    np.testing.assert_allclose(fused, [0.75, 0.75, 2 / 3], rtol=1e-6)
    # Weight 0 drops a ranker: only the first ranking counts -> 1/2, 1/4, 1/3.
    fused = reciprocal_rank_fusion([np.array([0.9, 0.1, 0.5]), np.array([0.2, 0.8, 0.6])], [1, 0], k=1)
    np.testing.assert_allclose(fused, [0.5, 0.25, 1 / 3], rtol=1e-6)


def test_top_indices_skips_non_matches_and_breaks_ties_by_position() -> None:
    scores = np.array([0.5, -np.inf, 0.9, 0.5, -np.inf])
    assert top_indices(scores, 10).tolist() == [2, 0, 3]
    assert top_indices(scores, 2).tolist() == [2, 0]
    assert top_indices(np.full(3, -np.inf), 5).tolist() == []
