"""Personalisation: the blend by hand, histories, and reading two-tower article vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.search.personal import (
    CustomerHistory,
    Personaliser,
    build_customer_history,
    load_two_tower_vectors,
)

A, B = "a" * 64, "b" * 64


def _history(tmp_path: Path, rows: list[tuple[str, str]], row_of: dict[str, int]) -> CustomerHistory:
    pd.DataFrame(rows, columns=["customer_id", "article_id"]).to_parquet(tmp_path / "h.parquet")
    history = CustomerHistory.load(tmp_path / "h.parquet", row_of)
    assert history is not None
    return history


def test_blend_by_hand(tmp_path: Path) -> None:
    row_of = {"0000000001": 0, "0000000002": 1, "0000000003": 2}
    history = _history(tmp_path, [(A, "0000000002")], row_of)
    vectors = np.array([[1, 0], [0, 1], [0, 1]], dtype=np.float32)
    p = Personaliser(history, vectors, "text", weight=0.5, pool=10)
    # relevance [0.9, 0.5, 0.1] -> min-max [1, 0.5, 0]; A bought article 2: taste [0, 1],
    # affinity [0, 1, 1] -> min-max [0, 1, 1]; 0.5 * each: [0.5, 0.75, 0.5]
    blended = p.blend(A, np.array([0.9, 0.5, 0.1]), None)
    np.testing.assert_allclose(blended, [0.5, 0.75, 0.5])
    assert p.blend(B, np.array([0.9, 0.5, 0.1]), None) is None  # no history: plain ranking
    # Outside the pool (size 2: the two most relevant) nothing is promoted.
    small = Personaliser(history, vectors, "text", weight=0.5, pool=2)
    assert np.isneginf(small.blend(A, np.array([0.9, 0.5, 0.1]), None)[2])


def test_history_keeps_the_latest_distinct_catalogue_purchases() -> None:
    tx = pd.DataFrame(
        {
            "customer_id": [A, A, A, A, B],
            "article_id": ["0000000001", "0000000002", "0000000001", "0000000009", "0000000003"],
            "t_dat": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04", "2020-01-01"]),
        }
    )
    history = build_customer_history(tx, pd.Series(["0000000001", "0000000002", "0000000003"]), max_items=2)
    # A: 0000000009 is not in the catalogue; latest distinct: 0000000001 (01-03), 0000000002 (01-02)
    assert history[history["customer_id"] == A]["article_id"].tolist() == ["0000000001", "0000000002"]
    assert history[history["customer_id"] == B]["article_id"].tolist() == ["0000000003"]


def test_two_tower_vectors_are_aligned_to_the_catalogue(tmp_path: Path) -> None:
    folder = tmp_path / "two_tower" / "v1"
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"name": "two_tower", "version": "v1"}))
    np.save(folder / "article_embeddings.npy", np.array([[3, 4], [0, 2]], dtype=np.float32))
    pd.DataFrame({"article_id": ["0000000002", "0000000001"]}).to_parquet(folder / "articles_vocab.parquet")
    found = load_two_tower_vectors(tmp_path, np.array(["0000000001", "0000000002", "0000000003"], dtype=object))
    assert found is not None
    vectors, version = found
    assert version == "v1"
    # catalogue order: 01 -> [0, 1] (normalised [0, 2]), 02 -> [0.6, 0.8], 03 unknown -> zeros
    np.testing.assert_allclose(vectors, [[0, 1], [0.6, 0.8], [0, 0]], atol=1e-6)


def test_no_two_tower_model_means_text_vectors(tmp_path: Path) -> None:
    assert load_two_tower_vectors(tmp_path, np.array(["0000000001"], dtype=object)) is None


@pytest.mark.parametrize("source", ["off"])
def test_personalisation_can_be_switched_off(index_dir: Path, search_settings, search_index, source: str) -> None:
    from services.search.engine import SearchIndex
    from tests.search.conftest import CUSTOMER_A

    settings = search_settings.model_copy(update={"personal_source": source})
    index = SearchIndex.load(index_dir, settings, with_images=False, encoder=search_index.encoder)
    assert index.personaliser is None
    assert index.text_search("dress", customer_id=CUSTOMER_A).personalised is False
