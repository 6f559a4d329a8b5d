"""Search evaluation's pieces by hand: precision@k, leave-one-out neighbours, text queries from catalogue pairs."""

from __future__ import annotations

import numpy as np


def test_precision_and_leave_one_out_by_hand() -> None:
    from services.search.evaluate import loo_neighbours, precision_at_k

    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    neighbours = loo_neighbours(vectors, np.arange(4), k=1)
    assert neighbours.ravel().tolist() == [1, 0, 3, 2]  # never itself
    labels = np.array(["a", "a", "b", "a"], dtype=object)
    # hits: 0->1 (a=a), 1->0 (a=a), 2->3 (b!=a), 3->2 (a!=b) -> 2 of 4
    assert precision_at_k(neighbours, labels, np.arange(4)) == 0.5


def test_text_queries_come_from_catalogue_pairs(sample_articles) -> None:
    from services.search.evaluate import text_queries

    queries = dict(text_queries(sample_articles, min_relevant=3))
    pair_counts = sample_articles.groupby(["colour_group_name", "product_type_name"]).size()
    assert "black trousers" in queries
    assert len(queries["black trousers"]) == pair_counts[("Black", "Trousers")]
    assert all(len(rows) >= 3 for rows in queries.values())
