"""World statistics on a hand-made frame (numbers worked out in the comments) and on `tiny`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data_stats import (
    REAL_STATS,
    customer_stats,
    format_table,
    in_range,
    transaction_stats,
    world_stats,
)
from shared.data import load_dataset

A, B, C = "a" * 64, "b" * 64, "c" * 64


def hand_made() -> pd.DataFrame:
    # day = days since 2020-01-01 (the first date)
    rows = [
        ("2020-01-01", A, "x", 0.01, 2),  # day 0
        ("2020-01-01", A, "x", 0.01, 2),  # day 0: second unit of x -> repeat (same day, 28d, ever)
        ("2020-01-01", A, "y", 0.02, 2),  # day 0
        ("2020-01-10", A, "x", 0.01, 1),  # day 9: x again after 9 days -> repeat (28d, ever)
        ("2020-03-01", A, "y", 0.03, 1),  # day 60: y again after 60 days -> repeat (ever only)
        ("2020-01-02", B, "z", 0.04, 2),  # day 1
        ("2020-01-02", B, "x", 0.05, 2),  # day 1
        ("2020-01-20", C, "w", 0.02, 1),  # day 19
        ("2020-03-01", C, "v", 0.02, 1),  # day 60: v first sold today -> a new article
    ]
    tx = pd.DataFrame(rows, columns=["t_dat", "customer_id", "article_id", "price", "sales_channel_id"])
    tx["t_dat"] = pd.to_datetime(tx["t_dat"])
    tx["price"] = tx["price"].astype("float32")
    tx["sales_channel_id"] = tx["sales_channel_id"].astype("int8")
    return tx


def test_transaction_stats_by_hand() -> None:
    s = transaction_stats(hand_made())
    assert s["transactions"] == 9 and s["buyers"] == 3 and s["articles_sold"] == 5
    # rows per customer: A 5, B 2, C 2 -> mean 3; 'lower' median of [2, 2, 5] = 2
    assert s["tx_per_customer_mean"] == 3.0 and s["tx_per_customer_median"] == 2
    assert s["tx_per_customer_p99"] == 2  # lower quantile: index floor(0.99 * 2) = 1 -> 2
    # repeats: ever rows 2, 4, 5 -> 3/9; within 28 days rows 2, 4 -> 2/9; same day row 2 -> 1/9
    assert s["repeat_share_ever"] == pytest.approx(3 / 9)
    assert s["repeat_share_28d"] == pytest.approx(2 / 9)
    assert s["repeat_share_same_day"] == pytest.approx(1 / 9)
    # baskets: A d0 (3), A d9 (1), A d60 (1), B d1 (2), C d19 (1), C d60 (1) -> sorted [1,1,1,1,2,3]
    assert s["basket_rows_mean"] == pytest.approx(9 / 6)
    assert s["basket_rows_median"] == 1  # index floor(0.5 * 5) = 2 -> 1
    assert s["basket_rows_p90"] == 2  # index floor(0.9 * 5) = 4 -> 2
    # shopping days: A 3, B 1, C 2 -> median 2; first-to-last spans A 60, B 0, C 41 -> median 41
    assert s["days_per_customer_median"] == 2
    assert s["median_days_first_to_last"] == 41
    # weeks: 61 days -> 8 full weeks; buyers per week: w0 {A, B}, w1 {A}, w2 {C}, w3..w7 none
    # -> mean 4/8 = 0.5 buyers per week out of 3 buyers = 1/6
    assert s["weekly_active_share"] == pytest.approx(1 / 6)
    # sales: x 4, y 2, z 1, w 1, v 1; top 1% and top 10% of 5 articles = the top 1 article = 4/9
    assert s["top1pct_article_share"] == pytest.approx(4 / 9)
    assert s["top10pct_article_share"] == pytest.approx(4 / 9)
    # rows from day 28 on: row 5 (y, first sold day 0: old) and row 9 (v, first sold day 60: new) -> 1/2
    assert s["new_article_share"] == pytest.approx(0.5)
    # online: rows 1, 2, 3, 6, 7 -> 5/9
    assert s["online_share"] == pytest.approx(5 / 9)
    # prices sorted: .01 .01 .01 .02 .02 .02 .03 .04 .05 -> p50 index 4 = .02, p95 index floor(7.6) = 7 = .04
    assert s["price_p50"] == pytest.approx(0.02) and s["price_p95"] == pytest.approx(0.04)
    # months: 7 rows in January, 2 in March
    assert s["month_01_share"] == pytest.approx(7 / 9) and s["month_03_share"] == pytest.approx(2 / 9)
    assert s["month_02_share"] == 0.0


def test_customer_stats_by_hand() -> None:
    customers = pd.DataFrame(
        {
            "customer_id": [A, B, C, "d" * 64],
            "FN": np.array([1.0, np.nan, np.nan, 1.0], dtype="float32"),
            "Active": np.array([1.0, np.nan, np.nan, np.nan], dtype="float32"),
            "age": np.array([20.0, 50.0, np.nan, 30.0], dtype="float32"),
        }
    )
    s = customer_stats(customers)
    # known ages [20, 30, 50]: lower median index floor(0.5 * 2) = 1 -> 30; one of four unknown
    assert s["age_median"] == 30 and s["age_missing_share"] == 0.25
    assert s["fn_share"] == 0.5 and s["active_share"] == 0.25


def test_empty_transactions_give_only_the_count() -> None:
    assert transaction_stats(hand_made().iloc[:0]) == {"transactions": 0.0}


def test_format_table_shows_the_real_column_and_whether_within_2x() -> None:
    table = format_table(
        {
            "online_share": 5 / 9,
            "buyers": 3.0,
            "repeat_share_ever": 0.5,
            "transactions": 10.0,
            "price_p50": 0.0128,
            "price_p5": 0.0037,
        }
    )
    lines = [line.split() for line in table.splitlines()]
    assert lines[0] == ["statistic", "value", "real", "within_2x"]
    assert lines[1] == ["online_share", "0.556", "0.710", "yes"]  # 0.78x
    assert lines[2] == ["buyers", "3", "-", "-"]  # no real figure
    assert lines[3] == ["repeat_share_ever", "0.500", "0.133", "OUT"]  # 3.8x
    assert lines[4] == ["transactions", "10", "31,788,324", "-"]  # set by the scale
    assert lines[5] == ["price_p50", "0.0128", "0.0254", "yes"]  # 0.504x: just inside
    assert lines[6] == ["price_p5", "0.0037", "0.0076", "OUT"]  # 0.487x: just outside


def test_in_range_bounds() -> None:
    assert in_range("online_share", 2 * 0.71) == "yes" and in_range("online_share", 0.71 / 2) == "yes"
    assert in_range("online_share", 2.01 * 0.71) == "OUT" and in_range("online_share", 0.71 / 2.01) == "OUT"
    assert in_range("articles", 12_000) == "-"  # scale counts are not compared
    assert in_range("new_article_share", 0.2) == "-"  # no real figure
    assert in_range("online_share", float("nan")) == "-"


def test_tiny_world_lies_within_loose_bands(tiny_world: Path) -> None:
    ds = load_dataset(tiny_world)
    s = world_stats(ds.transactions, ds.customers, ds.articles)
    # Real figures, then tiny's (seed 0) in comments. Tiny sells only ~430 of its 600 articles
    # to 2,000 customers, so coincidental repeats run high and histories are short.
    assert 1 <= s["basket_rows_median"] <= 3  # real 2, tiny 2
    assert 2.5 < s["basket_rows_mean"] < 5  # real 3.6, tiny 3.26
    assert 1 <= s["tx_per_customer_p10"] <= 3  # real 2, tiny 1
    assert 4 <= s["tx_per_customer_median"] <= 10  # real 9, tiny 6
    assert 0.2 < s["repeat_share_ever"] < 0.45  # real 0.133, tiny 0.323
    assert 0.1 < s["repeat_share_same_day"] < 0.25  # real 0.099, tiny 0.172
    assert s["repeat_share_ever"] > s["repeat_share_28d"] > s["repeat_share_same_day"]
    assert 0.03 < s["weekly_active_share"] < 0.07  # real 0.054, tiny 0.040
    assert 0.65 < s["online_share"] < 0.77  # real 0.71, tiny 0.721
    assert 0.015 < s["price_p50"] < 0.04  # real 0.0254, tiny 0.0246
    assert 0.35 < s["top10pct_article_share"] < 0.7  # tiny 0.503
    assert 0.12 < s["new_article_share"] < 0.4  # tiny 0.231
    assert 26 <= s["age_median"] <= 36  # real 31, tiny 31
    assert 0.25 < s["fn_share"] < 0.42  # real 0.33, tiny 0.335
    assert s["month_06_share"] > s["month_02_share"]  # real .107 vs .064


def test_real_sample_figures_are_in_range(hm_sample_dir: Path) -> None:
    # 10,000 real rows (a cut of the data set, not whole histories): only row-level figures compare.
    ds = load_dataset(hm_sample_dir / "resaved_by_pandas")
    s = transaction_stats(ds.transactions)
    assert abs(s["online_share"] - REAL_STATS["online_share"]) < 0.05
    assert 0.015 < s["price_p50"] < 0.035
