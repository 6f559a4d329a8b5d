"""Filters, facets and prices: hand-made catalogues with hand-counted answers, then the real sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.search.filters import Catalogue, build_catalogue
from shared.contract.schemas import FILTER_COLUMNS, SearchFilters


def _articles() -> pd.DataFrame:
    base = {c: ["x"] * 5 for c in FILTER_COLUMNS}
    base.update(
        {
            "article_id": ["0000000001", "0000000002", "0000000003", "0000000004", "0000000005"],
            "prod_name": ["a", "b", "c", "d", "e"],
            "product_type_name": ["Dress", "Dress", "Trousers", "Dress", "Sweater"],
            "colour_group_name": ["Black", "White", "Black", "Black", "Red"],
        }
    )
    return pd.DataFrame(base)


def _transactions() -> pd.DataFrame:
    # article 1: 0.01 and 0.03 -> mean 0.02; article 3: 0.05; articles 2, 4, 5 never sold.
    return pd.DataFrame({"article_id": ["0000000001", "0000000001", "0000000003"], "price": [0.01, 0.03, 0.05]})


@pytest.fixture()
def catalogue() -> Catalogue:
    return Catalogue.from_frame(build_catalogue(_articles(), _transactions()))


def test_price_is_the_mean_transaction_price_else_absent(catalogue: Catalogue) -> None:
    np.testing.assert_allclose(catalogue.price[[0, 2]], [0.02, 0.05], rtol=1e-6)
    assert np.isnan(catalogue.price[[1, 3, 4]]).all()
    no_tx = build_catalogue(_articles(), None)
    assert no_tx["price"].isna().all()


def test_no_filter_is_no_mask(catalogue: Catalogue) -> None:
    assert catalogue.mask(None) is None
    assert catalogue.mask(SearchFilters()) is None


def test_values_or_within_a_column_and_across_columns(catalogue: Catalogue) -> None:
    dresses = catalogue.mask(SearchFilters(product_type_name=["Dress"]))
    assert dresses.tolist() == [True, True, False, True, False]
    black_dresses = catalogue.mask(SearchFilters(product_type_name=["Dress"], colour_group_name=["Black"]))
    assert black_dresses.tolist() == [True, False, False, True, False]
    dress_or_sweater = catalogue.mask(SearchFilters(product_type_name=["Dress", "Sweater"]))
    assert dress_or_sweater.tolist() == [True, True, False, True, True]
    assert not catalogue.mask(SearchFilters(colour_group_name=["Purple"])).any()  # unknown value: nothing


def test_price_range_keeps_priced_articles_inside_it(catalogue: Catalogue) -> None:
    assert catalogue.mask(SearchFilters(price_min=0.015, price_max=0.025)).tolist() == [
        True,
        False,
        False,
        False,
        False,
    ]
    assert catalogue.mask(SearchFilters(price_min=0.03)).tolist() == [False, False, True, False, False]
    # Never-sold articles have no price, so any price filter leaves them out.
    assert catalogue.mask(SearchFilters(price_max=1.0)).tolist() == [True, False, True, False, False]


def test_facets_count_the_given_rows_most_frequent_first(catalogue: Catalogue) -> None:
    facets = catalogue.facets(np.array([0, 1, 2, 3]))
    # rows 0-3: types Dress, Dress, Trousers, Dress -> Dress 3, Trousers 1
    assert [(f.value, f.count) for f in facets["product_type_name"]] == [("Dress", 3), ("Trousers", 1)]
    # colours Black, White, Black, Black -> Black 3, White 1
    assert [(f.value, f.count) for f in facets["colour_group_name"]] == [("Black", 3), ("White", 1)]
    assert set(facets) == set(FILTER_COLUMNS)
    # Ties: alphabetical. rows 2, 4 -> Sweater 1, Trousers 1
    assert [f.value for f in catalogue.facets(np.array([2, 4]))["product_type_name"]] == ["Sweater", "Trousers"]


def test_real_sample_prices_from_the_fixture_transactions(search_index, sample_articles) -> None:
    ids = sample_articles["article_id"].tolist()
    frame = search_index.catalogue.frame.set_index("article_id")
    assert frame.loc[ids[0], "price"] == pytest.approx(0.02)  # (0.01 + 0.03) / 2
    assert frame.loc[ids[1], "price"] == pytest.approx(0.05)
    assert frame["price"].notna().sum() == 2


def test_filtered_search_returns_only_matching_articles_with_consistent_facets(search_index, sample_articles) -> None:
    wanted = SearchFilters(colour_group_name=["Black"])
    answer = search_index.text_search("top", k=50, filters=wanted, mode="hybrid")
    frame = search_index.catalogue.frame.set_index("article_id")
    colours = {frame.loc[r.article_id, "colour_group_name"] for r in answer.results}
    assert colours == {"Black"}
    n_black = int((sample_articles["colour_group_name"] == "Black").sum())
    assert len(answer.results) == min(50, n_black)
    # The facet pool (200) covers every black article here, so the colour facet is exactly that count...
    assert [(f.value, f.count) for f in answer.facets["colour_group_name"]] == [("Black", n_black)]
    # ...and the type facet counts the black articles' types.
    expected = sample_articles.loc[sample_articles["colour_group_name"] == "Black", "product_type_name"].value_counts()
    assert {f.value: f.count for f in answer.facets["product_type_name"]} == expected.to_dict()


def test_price_filter_on_real_sample(search_index, sample_articles) -> None:
    answer = search_index.text_search("a", k=10, filters=SearchFilters(price_min=0.04), mode="semantic")
    assert [r.article_id for r in answer.results] == [sample_articles["article_id"].iloc[1]]  # the 0.05 one
