"""Wire models at the edge: bad numbers are refused, candidates carry their sources."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.contract.schemas import Candidate, RankRequest, SearchFilters


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_price_filters_refuse_nan_infinity_and_negatives(value):
    with pytest.raises(ValidationError):
        SearchFilters(price_max=value)


def test_candidate_sources_are_named_and_default_empty():
    assert Candidate(article_id="108775015", score=0.5).sources == {}
    c = Candidate(article_id="108775015", score=0.5, sources={"repurchase": 1.0, "two_tower": 0.5})
    assert c.article_id == "0108775015" and c.sources["repurchase"] == 1.0
    with pytest.raises(ValidationError):
        Candidate(article_id="1", score=0.1, sources={"made_up": 1.0})
    with pytest.raises(ValidationError):  # at most 2,000 candidates per ranking request
        RankRequest(customer_id="0" * 64, candidates=[Candidate(article_id="1", score=0.0)] * 2001)


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), 1e7])
def test_source_scores_are_finite_non_negative_and_bounded(value):
    with pytest.raises(ValidationError):
        Candidate(article_id="1", score=0.1, sources={"repurchase": value})
