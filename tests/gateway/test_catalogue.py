"""The gateway's catalogue: popular articles by age band, filters and mean prices, the real sample's cards."""

from __future__ import annotations

import pytest

from services.gateway.catalogue import build_catalogue, popular_by_band
from shared.contract.schemas import SearchFilters
from tests.gateway.gateway_fakes import ARTICLES, tiny_frames

A = ARTICLES


def test_popular_by_band_counts_only_the_last_weeks():
    articles, customers, transactions = tiny_frames()
    # one week: 2020-09-16..22 -> young A5 x2, mid A2 x1
    one = popular_by_band(transactions, customers, weeks=1, per_band=3)
    assert one["all"] == [A[4], A[1]]  # A5 (2) before A2 (1)
    assert one["16-24"] == [A[4], A[1]] and one["35-44"] == [A[1], A[4]]
    # three weeks start 2020-09-02: mid's A1 (2020-09-01) is still out; four weeks reach it
    three = popular_by_band(transactions, customers, weeks=3, per_band=10)
    assert A[0] not in three["35-44"]
    four = popular_by_band(transactions, customers, weeks=4, per_band=10)
    assert four["35-44"][:2] == [A[1], A[0]]


def test_compile_filter_and_mean_price(tmp_path):
    articles, customers, transactions = tiny_frames()
    cat = build_catalogue(articles, customers, transactions, tmp_path)
    assert cat.compile_filter(SearchFilters()) is None
    black_dress = cat.compile_filter(SearchFilters(colour_group_name=["Black"], product_type_name=["Dress"]))
    assert [a for a in A if black_dress(a)] == [A[0], A[7]]
    assert not black_dress("0999999999")
    # A2 was bought at 0.05 three times -> mean 0.05; A5 at 0.02 and 0.04 -> 0.03
    assert cat.card(A[1])["price"] == pytest.approx(0.05) and cat.card(A[4])["price"] == pytest.approx(0.03)
    cheap = cat.compile_filter(SearchFilters(price_max=0.03))
    assert [a for a in A if cheap(a)] == [A[2], A[4], A[5]]
    assert cat.card(A[3])["price"] is None and cat.card(A[0])["image_url"] is None  # no photos in tmp_path


def test_catalogue_from_the_real_sample(hm_sample_dir, tmp_path):
    """The loaders' output on real rows: padded ids, photos found, prices from transactions."""
    from services.gateway.catalogue import load_catalogue

    cat = load_catalogue(hm_sample_dir / "resaved_by_pandas", None, popular_weeks=2, popular_per_band=50)
    assert len(cat.article_ids) == 4903 and all(len(a) == 10 for a in cat.article_ids[:50])
    assert len(cat.popular["all"]) == 50
    real = load_catalogue(hm_sample_dir, None, popular_weeks=2, popular_per_band=10)
    assert len(real.article_ids) == 1500 and real.has_image.sum() > 1000
    some = real.article_ids[int(real.has_image.argmax())]
    assert real.image_path(some).is_file()
