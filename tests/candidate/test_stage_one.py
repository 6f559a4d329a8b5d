"""Stage one (services/candidate/stage_one.py): every source worked out by hand on the toy
data, no leakage from the label week, and the service answering what the batch computes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from services.candidate.stage_one import StageOneConfig, build_tables, stage_one_frame
from tests.candidate.conftest import CUTOFF, aid, cid

# Toy purchases before the cutoff 2020-09-16 (days ago): c1 a1+a2 (20), a3 (14), a1 (6);
# c2 a2 (13), a4 (1); c3 a4 (6). Product codes: a1 and a2 are colours of one product.
E = math.exp


@pytest.fixture
def toy_tables(toy):
    articles = toy.articles.assign(product_code=["100", "100", "200", "300", "400"])
    return build_tables(toy.transactions, toy.customers, articles, CUTOFF)


def _frame(tables, customers, config=None, recent=None):
    return stage_one_frame(tables, None, [cid(c) for c in customers], config or StageOneConfig(), recent)


def test_each_source_by_hand(toy_tables):
    f = _frame(toy_tables, [1]).set_index("article_id")
    # repurchase: exp(-days / 30) * (1 + log(times)): a1 bought twice, last 6 days ago
    assert f.loc[aid(1), "src_repurchase"] == pytest.approx(E(-6 / 30) * (1 + math.log(2)), rel=1e-5)
    assert f.loc[aid(3), "src_repurchase"] == pytest.approx(E(-14 / 30), rel=1e-5)
    assert f.loc[aid(2), "src_repurchase"] == pytest.approx(E(-20 / 30), rel=1e-5)
    # co-purchase pairs (same day, or within 7 days after): a1->a2, a2->a1 (same day 08-27),
    # a2->a3 and a1->a3 (6 days later); a1 and a2 each bought on 2 (customer, day)s, so every
    # weight is 1/2. c1's seeds a1 (6 days ago), a3 (14), a2 (20):
    #   a3 <- a1 and a2: 0.5 e^-0.2 + 0.5 e^-0.667;  a2 <- a1: 0.5 e^-0.2;  a1 <- a2: 0.5 e^-0.667
    assert f.loc[aid(3), "src_copurchase"] == pytest.approx(0.5 * (E(-6 / 30) + E(-20 / 30)), rel=1e-5)
    assert f.loc[aid(2), "src_copurchase"] == pytest.approx(0.5 * E(-6 / 30), rel=1e-5)
    assert f.loc[aid(1), "src_copurchase"] == pytest.approx(0.5 * E(-20 / 30), rel=1e-5)
    # other colours: a2 is a1's (seed 6 days ago), a1 is a2's (20 days ago)
    assert f.loc[aid(2), "src_variant"] == pytest.approx(E(-6 / 30), rel=1e-5)
    assert f.loc[aid(1), "src_variant"] == pytest.approx(E(-20 / 30), rel=1e-5)
    # trending, shop: last week a1 x1 (0 the week before), a4 x2 (0 before):
    #   a1 1 * min(3, 2/1) = 2, a4 2 * min(3, 3/1) = 6.  c1 is 23 (band 20-24), whose only sale
    #   is a1 (score 2) + 0.1 x shop: a1 2.2, a4 0.6 -> normalised a1 1, a4 0.6 / 2.2
    assert f.loc[aid(1), "src_trending"] == pytest.approx(1.0)
    assert f.loc[aid(4), "src_trending"] == pytest.approx(0.6 / 2.2, rel=1e-5)
    # popular: last week's best sellers a4 (2), a1 (1): 1 - rank / 2
    assert f.loc[aid(4), "src_popular"] == pytest.approx(1.0)
    assert f.loc[aid(1), "src_popular"] == pytest.approx(0.5)
    # nothing else, and a5 (never sold) nowhere
    assert sorted(f.index) == [aid(1), aid(2), aid(3), aid(4)]


def test_order_tags_and_ranks(toy_tables):
    f = _frame(toy_tables, [1])
    # repurchases by their score first, then what only trending and popular found
    assert list(f["article_id"]) == [aid(1), aid(3), aid(2), aid(4)]
    assert list(f["source"]) == ["repurchase", "repurchase", "repurchase", "trending"]
    assert list(f["rank"]) == [1, 2, 3, 4]
    assert (f["score"] == 0).all()  # no two-tower given: no cosine


def test_cold_start_gets_the_age_band_trend_then_best_sellers(toy_tables):
    # c4 (30, band 30-39) never bought: the band has no sales, so 0.1 x the shop's trend
    f = _frame(toy_tables, [4])
    assert list(f["article_id"]) == [aid(4), aid(1)]
    assert f["src_trending"].tolist() == pytest.approx([1.0, 2 / 6])
    assert f["src_repurchase"].eq(0).all()


def test_recent_articles_come_first_as_bought_today(toy_tables):
    f = _frame(toy_tables, [4], recent=[[aid(3)]]).set_index("article_id")
    assert f.loc[aid(3), "src_repurchase"] == pytest.approx(1.0)  # exp(0) * (1 + log 1)
    assert f.index[0] == aid(3)


def test_sizes_are_respected(toy_tables):
    config = StageOneConfig(repurchase_k=1, copurchase_k=1, variant_k=0, trending_k=1, popular_k=1)
    f = _frame(toy_tables, [1], config)
    assert (f["src_repurchase"] > 0).sum() == 1 and (f["src_copurchase"] > 0).sum() == 1
    assert (f["src_variant"] > 0).sum() == 0


def test_tables_never_read_the_label_week(toy):
    before = build_tables(toy.transactions, toy.customers, toy.articles, CUTOFF)
    tx = toy.transactions.copy()
    week = tx["t_dat"] >= pd.Timestamp(CUTOFF)
    # rewrite every label-week row: other customers, other articles, many more of them
    noisy = pd.concat([tx[week]] * 5, ignore_index=True)
    noisy["article_id"] = aid(2)
    noisy["customer_id"] = cid(4)
    after = build_tables(pd.concat([tx[~week], noisy], ignore_index=True), toy.customers, toy.articles, CUTOFF)
    for name in before.ARRAYS:
        np.testing.assert_array_equal(getattr(before, name), getattr(after, name), err_msg=name)


@pytest.mark.slow
def test_the_service_serves_what_the_batch_computes(trained, tiny_dataset, tiny_cutoff):
    """One function for every path: the candidate service's list (snapshot + exported tables)
    equals the offline list (features and tables computed from the data) at the model's cutoff."""
    from pipeline.evaluated_candidates import candidates_at
    from services.candidate.serving import ServingModel

    folder = trained / "two_tower" / "v1"
    served = ServingModel.load(folder)
    # customers of the customer table, with and without purchases (an id absent from the
    # table has no profile offline at all; the service answers it from the cold-start path)
    customers = sorted(tiny_dataset.customers["customer_id"].astype(str))[:40]
    offline = candidates_at(folder, tiny_dataset, tiny_cutoff, customers)
    for c in customers:
        online = served.candidates(c, None)
        mine = offline[offline["customer_id"] == c].reset_index(drop=True)
        assert list(online["article_id"]) == list(mine["article_id"]), c
        np.testing.assert_allclose(online["score"], mine["score"], atol=1e-5)
        np.testing.assert_allclose(online.filter(like="src_"), mine.filter(like="src_"), atol=1e-5)


@pytest.mark.slow
def test_the_batch_file_is_stage_one_customer_by_customer(trained, tiny_dataset, tiny_cutoff, tmp_path):
    """``hmrec infer``'s file (chunks of 7, everyone's query inputs computed once, columns
    gathered by arrow, exclusions dropped from the arrays) holds exactly what :func:`stage_one_frame`
    gives each customer alone from the transactions, with the exclusions filtered out after."""
    from services.candidate.artifact import load_two_tower
    from services.candidate.batch import write_stage_one
    from services.candidate.two_tower_source import TwoTowerSource

    model = load_two_tower(trained / "two_tower" / "v1")
    config = StageOneConfig.from_dict(model.metadata.get("stage_one"))
    customers = sorted(tiny_dataset.customers["customer_id"].astype(str))[:30] + ["f" * 64]  # last: unknown
    excluded_index = str(tiny_dataset.articles["index_name"].iloc[0])
    out = tmp_path / "stage_one.parquet"
    stats = write_stage_one(
        model,
        tiny_dataset,
        out,
        customer_ids=customers,
        config=config,
        exclude_attributes={"index_name": [excluded_index]},
        chunk_size=7,
        progress=False,
    )
    written = pd.read_parquet(out)
    assert stats.rows == len(written) and stats.customers == written["customer_id"].nunique() == len(customers)

    source = TwoTowerSource.offline(model, tiny_dataset, None, config.not_sold_weeks)  # per call, no table
    tables = build_tables(
        tiny_dataset.transactions, tiny_dataset.customers, tiny_dataset.articles, source.as_of, not_sold_weeks=8
    )
    dropped = set(tiny_dataset.articles.loc[tiny_dataset.articles["index_name"] == excluded_index, "article_id"])
    assert dropped and not set(written["article_id"]) & dropped
    for c in customers:
        alone = stage_one_frame(tables, source, [c], config)
        alone = alone[~alone["article_id"].isin(dropped)].reset_index(drop=True)
        alone["rank"] = np.arange(1, len(alone) + 1, dtype=np.int32)
        mine = written[written["customer_id"] == c].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine[alone.columns], alone, check_dtype=False, atol=1e-6)


def test_expand_lists_every_csr_entry_of_every_key():
    from services.candidate.stage_one import _expand

    # key 0 owns entries 0-1, key 1 entry 2; keys [1, -1, 0]: entry 2 for the first, none for
    # the second (-1), entries 0 and 1 for the third
    owner, entry = _expand(np.array([0, 2, 3]), np.array([1, -1, 0]))
    assert owner.tolist() == [0, 2, 2] and entry.tolist() == [2, 0, 1]
