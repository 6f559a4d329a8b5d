"""The data layer loads real copies and refuses broken ones with a precise message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from shared.data import (
    DataValidationError,
    load_articles,
    load_customers,
    load_dataset,
    load_transactions,
)

HEADER_TX = "t_dat,customer_id,article_id,price,sales_channel_id\n"
CID = "a" * 64


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# --- real sample -----------------------------------------------------------------------------


def test_loads_genuine_kaggle_articles(hm_sample_dir: Path) -> None:
    a = load_articles(hm_sample_dir / "articles.csv")
    assert len(a) == 1500
    assert a["article_id"].str.len().eq(10).all()
    assert a["article_id"].iloc[0] == "0129085001"
    assert a["product_type_no"].dtype == "int32"
    # One real article has no detail_desc: it becomes the empty string, not NaN.
    assert (a["detail_desc"] == "").sum() == 1


def test_loads_files_resaved_by_pandas(hm_sample_dir: Path, tmp_path: Path) -> None:
    ds = load_dataset(hm_sample_dir / "resaved_by_pandas", cache_dir=tmp_path / "cache")
    assert (len(ds.articles), len(ds.customers), len(ds.transactions)) == (4903, 10000, 10000)
    # The pandas index column is dropped and ids that lost their leading zero are padded again.
    assert "Unnamed: 0" not in ds.articles.columns and "" not in ds.articles.columns
    assert ds.articles["article_id"].iloc[0] == "0108775015"
    assert ds.transactions["article_id"].str.len().eq(10).all()
    assert ds.transactions["t_dat"].dtype == "datetime64[ns]"
    assert ds.transactions["sales_channel_id"].isin([1, 2]).all()
    c = ds.customers
    assert set(c["FN"].unique()) <= {0.0, 1.0}
    assert c["age"].isna().sum() == 126  # 1.26% of 10,000 have no age in the real file
    assert c["age"].dropna().between(16, 99).all()


def test_parquet_cache_round_trip_and_refresh(hm_sample_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "d"
    shutil.copytree(hm_sample_dir / "resaved_by_pandas", src)
    cache = tmp_path / "cache"
    first = load_dataset(src, cache)
    assert (cache / "transactions_train.parquet").exists()
    second = load_dataset(src, cache)
    pd.testing.assert_frame_equal(first.transactions, second.transactions)
    pd.testing.assert_frame_equal(first.articles, second.articles)
    # Changing the CSV invalidates the cache: drop the last transaction row.
    lines = (src / "transactions_train.csv").read_text().splitlines()
    (src / "transactions_train.csv").write_text("\n".join(lines[:-1]) + "\n")
    third = load_dataset(src, cache)
    assert len(third.transactions) == len(first.transactions) - 1


# --- refusals ----------------------------------------------------------------------------------


def test_missing_column_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, "transactions_train.csv", f"t_dat,customer_id,article_id,price\n2020-01-01,{CID},1,0.1\n")
    with pytest.raises(
        DataValidationError,
        match=r"transactions_train.csv, column 'sales_channel_id', line 1: required column is missing",
    ):
        load_transactions(p)


def test_unparsable_date_names_row(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "transactions_train.csv",
        HEADER_TX + f"2020-01-01,{CID},0123456789,0.1,2\n2020-13-45,{CID},0123456789,0.1,2\n",
    )
    with pytest.raises(DataValidationError, match=r"column 't_dat', line 3: not a date .*'2020-13-45'"):
        load_transactions(p)


def test_negative_price_names_row(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "transactions_train.csv",
        HEADER_TX + f"2020-01-01,{CID},0123456789,0.1,2\n2020-01-02,{CID},0123456789,-0.5,1\n",
    )
    with pytest.raises(DataValidationError, match=r"column 'price', line 3: price is negative"):
        load_transactions(p)


def test_non_numeric_price_names_row(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "transactions_train.csv",
        HEADER_TX + f"2020-01-01,{CID},0123456789,0.1,2\n2020-01-02,{CID},0123456789,abc,1\n",
    )
    with pytest.raises(DataValidationError, match=r"column 'price', line 3: not a number.*'abc'"):
        load_transactions(p)


def test_bad_channel_and_bad_ids(tmp_path: Path) -> None:
    p = write(tmp_path, "t1.csv", HEADER_TX + f"2020-01-01,{CID},0123456789,0.1,3\n")
    with pytest.raises(
        DataValidationError, match=r"column 'sales_channel_id', line 2: sales_channel_id must be one of \[1, 2\]"
    ):
        load_transactions(p)
    p = write(tmp_path, "t2.csv", HEADER_TX + "2020-01-01,not-a-customer,0123456789,0.1,1\n")
    with pytest.raises(DataValidationError, match=r"column 'customer_id', line 2: customer_id must be 64"):
        load_transactions(p)
    p = write(tmp_path, "t3.csv", HEADER_TX + f"2020-01-01,{CID},12ab,0.1,1\n")
    with pytest.raises(DataValidationError, match=r"column 'article_id', line 2: article_id must be 1 to 10 digits"):
        load_transactions(p)


def test_unknown_articles_beyond_tolerance(tmp_path: Path) -> None:
    rows = "".join(f"2020-01-01,{CID},{'0123456789' if i else '0999999999'},0.1,2\n" for i in range(10))
    p = write(tmp_path, "transactions_train.csv", HEADER_TX + rows)
    # 1 of 10 rows (10%) names an article outside the catalogue: refused at 0.1% tolerance ...
    with pytest.raises(DataValidationError, match=r"line 2: 10.00% of transactions name articles absent.*'0999999999'"):
        load_transactions(p, article_ids=pd.Series(["0123456789"]))
    # ... and accepted when the caller states a looser tolerance.
    assert len(load_transactions(p, article_ids=pd.Series(["0123456789"]), tolerance=0.2)) == 10


def test_customers_age_out_of_range(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "customers.csv",
        "customer_id,FN,Active,club_member_status,fashion_news_frequency,age,postal_code\n"
        f"{CID},1.0,,ACTIVE,NONE,250,x\n",
    )
    with pytest.raises(DataValidationError, match=r"column 'age', line 2: age outside 0..120"):
        load_customers(p)


def test_duplicate_article_refused(hm_sample_dir: Path, tmp_path: Path) -> None:
    lines = (hm_sample_dir / "articles.csv").read_text().splitlines()
    # header = line 1, two articles = lines 2-3, the first article again = line 4
    p = write(tmp_path, "articles.csv", "\n".join([*lines[:3], lines[1]]) + "\n")
    with pytest.raises(DataValidationError, match=r"column 'article_id', line 4: duplicate article_id"):
        load_articles(p)


def test_data_check_cli_reports(hm_sample_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        cli,
        [
            "data",
            "check",
            "--data-dir",
            str(hm_sample_dir / "resaved_by_pandas"),
            "--output-dir",
            str(tmp_path / "out"),
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "transactions        10,000" in ok.output
    assert "2018-09-20 .. 2018-09-20" in ok.output
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(hm_sample_dir / "articles.csv", bad / "articles.csv")
    (bad / "transactions_train.csv").write_text(HEADER_TX + f"2020-01-01,{CID},0129085001,-1,2\n")
    res = runner.invoke(cli, ["data", "check", "--data-dir", str(bad), "--output-dir", str(tmp_path / "o2")])
    assert res.exit_code == 1
    assert "price is negative" in res.output
