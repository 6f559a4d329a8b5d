"""Text search: documents and TF-IDF by hand, then retrieval sanity on real H&M articles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.search.text import TfidfIndex, article_documents


def test_documents_join_the_catalogue_words_and_skip_unknown() -> None:
    articles = pd.DataFrame(
        {
            "prod_name": ["Tilly dress"],
            "product_type_name": ["Dress"],
            "colour_group_name": ["Black"],
            "department_name": ["Unknown"],
            "detail_desc": [""],
        }
    )
    assert article_documents(articles) == ["Tilly dress. Dress. Black"]


def test_tfidf_ranks_the_matching_document_first_and_tolerates_plurals() -> None:
    docs = ["black dress in jersey", "white shirt in cotton", "black trousers with pleats", "red dress"]
    index = TfidfIndex.build(docs)
    assert int(np.argmax(index.scores("black dress"))) == 0
    # "shirts" shares no word with doc 1, but its character n-grams do.
    assert int(np.argmax(index.scores("shirts"))) == 1
    scores = index.scores("black dress")
    assert scores.max() <= 1.0 + 1e-6 and scores[1] < scores[0]  # cosine: unit document rows


def _types_of(search_index, answer) -> list[str]:
    rows = search_index.catalogue.frame.set_index("article_id")
    return [rows.loc[r.article_id, "product_type_name"] for r in answer.results]


@pytest.mark.parametrize("mode", ["tfidf", "semantic", "hybrid"])
def test_trousers_query_finds_trousers_on_real_articles(search_index, sample_articles, mode) -> None:
    n_trousers = int((sample_articles["product_type_name"] == "Trousers").sum())
    assert n_trousers >= 5  # the fixture's sample has enough for the check to mean something
    answer = search_index.text_search("trousers", k=5, mode=mode)
    types = _types_of(search_index, answer)
    # TF-IDF and hybrid: all five are trousers; the semantic model alone: at least 3 of 5
    # (it also likes leggings and shorts for "trousers").
    assert types.count("Trousers") >= (3 if mode == "semantic" else 5), types
    assert answer.mode == mode
    assert [r.score for r in answer.results] == sorted((r.score for r in answer.results), reverse=True)


def test_black_dress_is_black_dresses_first(search_index, sample_articles) -> None:
    answer = search_index.text_search("black dress", k=3)
    rows = search_index.catalogue.frame.set_index("article_id")
    top = rows.loc[answer.results[0].article_id]
    assert (top["product_type_name"], top["colour_group_name"]) == ("Dress", "Black")


def test_semantic_understands_a_paraphrase_tfidf_cannot(search_index) -> None:
    # "pants" appears in no catalogue word of a pair of trousers; the sentence model knows.
    types = _types_of(search_index, search_index.text_search("pants", k=5, mode="semantic"))
    assert sum(t in ("Trousers", "Shorts", "Leggings/Tights") for t in types) >= 3, types


def test_nonsense_query_has_no_tfidf_match(search_index) -> None:
    assert search_index.text_search("qqqqzzzz", k=5, mode="tfidf").results == []
    # Semantic always has a nearest neighbour: an answer, never an error.
    assert len(search_index.text_search("qqqqzzzz", k=5, mode="semantic").results) == 5
