"""The synthetic world: exact public format, determinism, the structure models must learn, the
baselines ordered as on real data, and the marker that tells a complete world from an interrupted
one or from external data."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

import pipeline.synthetic.world as world
from pipeline.cli import cli
from pipeline.commands.run import _has_data
from pipeline.data_stats import in_range, world_stats
from pipeline.ranking_metrics import map_at_k
from pipeline.synthetic import SCALES, generate_world
from pipeline.synthetic.catalogue import ARTICLE_COLUMNS, build_catalogue
from pipeline.synthetic.customers import CUSTOMER_COLUMNS, hex_ids
from pipeline.synthetic.images import render, silhouette
from pipeline.synthetic.transactions import TRANSACTION_COLUMNS
from pipeline.synthetic.world import WORLD_MARKER, world_status
from shared.baselines import (
    age_popular_recommendations,
    popular_articles,
    random_recommendations,
    repurchase_popular_recommendations,
)
from shared.data import load_dataset
from shared.split import default_cutoff, purchases_by_customer, split

TINY = SCALES["tiny"]


def header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f))


def raw_column(path: Path, column: str) -> list[str]:
    """A column exactly as written in the file (no dtype inference)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)[column].tolist()


@pytest.fixture(scope="module")
def tiny(tiny_world: Path):
    return load_dataset(tiny_world)


@pytest.fixture(scope="module")
def sparse(tmp_path_factory: pytest.TempPathFactory):
    """The ``sparse`` world (1,500 customers, 12,000 articles: few coincidental repeats), seed 0,
    with its hidden catalogue (same random stream as generate_world's) for the signal tests."""
    out = generate_world(tmp_path_factory.mktemp("sparse"), scale="sparse", seed=0, images=False)
    catalogue = build_catalogue(np.random.default_rng([0, 0]), SCALES["sparse"].n_articles)
    return load_dataset(out), catalogue


def visits(ds) -> pd.DataFrame:
    """Distinct (customer c, day d, article a) of a world, articles as catalogue indices."""
    tx = ds.transactions
    return pd.DataFrame(
        {
            "c": pd.factorize(tx["customer_id"])[0],
            "d": (tx["t_dat"] - tx["t_dat"].min()).dt.days.to_numpy(),
            "a": pd.Index(ds.articles["article_id"]).get_indexer(tx["article_id"]),
        }
    ).drop_duplicates()


def next_visit_rows(ds, catalogue) -> pd.DataFrame:
    """Each row of a customer's visit with how it relates to the articles of their previous
    visit: gap in days, and whether it is one of them (rebuy), a partner of one, or another
    colour of one's product code."""
    v = visits(ds)
    days = v[["c", "d"]].drop_duplicates().sort_values(["c", "d"])
    days["prev"] = days.groupby("c")["d"].shift()
    pairs = days.dropna().astype(np.int64)
    joined = pairs.merge(v, on=["c", "d"]).merge(v.rename(columns={"d": "prev", "a": "pa"}), on=["c", "prev"])
    pa, a = joined["pa"].to_numpy(), joined["a"].to_numpy()
    joined["gap"] = joined["d"] - joined["prev"]
    joined["rebuy"] = pa == a
    joined["partner"] = (catalogue.partners[pa] == a[:, None]).any(axis=1)
    joined["colour"] = (catalogue.code[pa] == catalogue.code[a]) & (pa != a)
    return joined.groupby(["c", "d", "a"]).agg(
        gap=("gap", "first"), rebuy=("rebuy", "any"), partner=("partner", "any"), colour=("colour", "any")
    )


# --- format ----------------------------------------------------------------------------------


def test_headers_equal_the_public_files(tiny_world: Path, hm_sample_dir: Path) -> None:
    assert header(tiny_world / "articles.csv") == header(hm_sample_dir / "articles.csv") == ARTICLE_COLUMNS
    resaved = hm_sample_dir / "resaved_by_pandas"
    # The resaved copies may carry pandas' unnamed index column first; the public files do not.
    for name, ours in [("customers.csv", CUSTOMER_COLUMNS), ("transactions_train.csv", TRANSACTION_COLUMNS)]:
        real = [c for c in header(resaved / name) if c and not c.startswith("Unnamed")]
        assert header(tiny_world / name) == real == ours


def test_row_counts_match_the_scale(tiny) -> None:
    assert (len(tiny.articles), len(tiny.customers), len(tiny.transactions)) == (
        TINY.n_articles,
        TINY.n_customers,
        TINY.n_transactions,
    )


def test_ids_are_written_like_kaggle(tiny_world: Path) -> None:
    article_ids = raw_column(tiny_world / "articles.csv", "article_id")
    assert all(re.fullmatch(r"0\d{9}", a) for a in article_ids)
    assert len(set(article_ids)) == len(article_ids)
    # product_code is the article id without its 3-digit colour suffix, written without padding.
    codes = raw_column(tiny_world / "articles.csv", "product_code")
    assert all(a[1:7] == c for a, c in zip(article_ids, codes, strict=True))
    tx_articles = raw_column(tiny_world / "transactions_train.csv", "article_id")
    assert all(re.fullmatch(r"0\d{9}", a) for a in tx_articles[:2000])
    customer_ids = raw_column(tiny_world / "customers.csv", "customer_id")
    assert all(re.fullmatch(r"[0-9a-f]{64}", c) for c in customer_ids)
    assert customer_ids == sorted(customer_ids)  # the real file is sorted by id
    assert set(raw_column(tiny_world / "customers.csv", "FN")) <= {"1.0", ""}
    ages = [a for a in raw_column(tiny_world / "customers.csv", "age") if a]
    assert all(a.isdigit() for a in ages)  # integers, like the public file


def test_transactions_are_consistent_and_plausible(tiny) -> None:
    tx = tiny.transactions
    assert tx["t_dat"].min() == pd.Timestamp("2018-09-20")
    assert tx["t_dat"].max() == pd.Timestamp("2020-09-22")
    assert tx["t_dat"].is_monotonic_increasing
    assert tx["article_id"].isin(tiny.articles["article_id"]).all()
    assert tx["customer_id"].isin(tiny.customers["customer_id"]).all()
    assert set(tx["sales_channel_id"].unique()) == {1, 2}
    assert 0.65 < (tx["sales_channel_id"] == 2).mean() < 0.77  # real: 71% online
    assert 0.015 < tx["price"].median() < 0.04  # real p50: 0.0254
    assert (tx["price"] > 0).all() and tx["price"].max() < 0.6


def test_prices_are_shelf_price_points(tiny_world: Path) -> None:
    # Real prices are shelf prices like 14.99 divided by 590; written with full precision.
    prices = np.array(raw_column(tiny_world / "transactions_train.csv", "price")[:5000], dtype=float)
    shelf = prices * 590
    assert np.allclose(shelf, np.round(shelf * 100) / 100, atol=1e-6)
    assert np.allclose((shelf + 0.01) * 2, np.round((shelf + 0.01) * 2), atol=1e-6)


def test_every_article_has_a_photo(tiny_world: Path, tiny) -> None:
    for article_id in tiny.articles["article_id"]:
        assert (tiny_world / "images" / article_id[:3] / f"{article_id}.jpg").exists(), article_id
    first = tiny.articles["article_id"].iloc[0]
    with Image.open(tiny_world / "images" / first[:3] / f"{first}.jpg") as img:
        assert img.size == TINY.image_size and img.mode == "RGB"
        assert min(img.getpixel((1, 1))) > 215  # light studio background


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_gives_identical_files(tiny_world: Path, tmp_path: Path) -> None:
    again = generate_world(tmp_path / "again", scale="tiny", seed=0, images=True)
    for name in ["articles.csv", "customers.csv", "transactions_train.csv"]:
        assert (again / name).read_bytes() == (tiny_world / name).read_bytes(), name
    photos = sorted((tiny_world / "images").rglob("*.jpg"))[:20]
    for p in photos:
        assert (again / p.relative_to(tiny_world)).read_bytes() == p.read_bytes()


def test_other_seed_gives_another_world_and_images_are_optional(tiny_world: Path, tmp_path: Path) -> None:
    other = generate_world(tmp_path / "other", scale="tiny", seed=1, images=False)
    assert (other / "transactions_train.csv").read_bytes() != (tiny_world / "transactions_train.csv").read_bytes()
    assert not (other / "images").exists()


def test_hex_ids_are_distinct_and_well_formed() -> None:
    ids = hex_ids(np.random.default_rng(0), 5000)
    assert len(set(ids)) == 5000
    assert all(len(i) == 64 and int(i, 16) >= 0 for i in ids[:10])


def test_unknown_scale_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown scale 'huge'; choose one of tiny, sparse, small, medium, kaggle"):
        generate_world(tmp_path, scale="huge")


# --- structure -------------------------------------------------------------------------------


def test_tastes_depend_on_age(tiny) -> None:
    tx = tiny.transactions.merge(tiny.customers[["customer_id", "age"]], on="customer_id")
    tx = tx.merge(tiny.articles[["article_id", "index_group_name"]], on="article_id")
    young = tx[tx["age"] <= 25]["index_group_name"].value_counts(normalize=True)
    older = tx[tx["age"] >= 45]["index_group_name"].value_counts(normalize=True)
    # Divided is the young line; Ladieswear the older customers' (clusters centred at 21 and 45).
    assert young.get("Divided", 0) > 2 * older.get("Divided", 0)
    assert older.get("Ladieswear", 0) > young.get("Ladieswear", 0)


def test_summer_articles_sell_in_summer(tiny) -> None:
    tx = tiny.transactions.merge(tiny.articles[["article_id", "product_type_name"]], on="article_id")
    summer = tx["product_type_name"].isin(["Shorts", "Swimwear bottom", "Bikini top", "Swimsuit", "Sandals"])
    month = tx["t_dat"].dt.month
    assert summer[month.isin([6, 7])].mean() > 1.5 * summer[month.isin([12, 1])].mean()


def test_articles_launch_over_time(tiny) -> None:
    first_sale = tiny.transactions.groupby("article_id")["t_dat"].min()
    launched_later = (first_sale > pd.Timestamp("2019-06-01")).mean()
    assert 0.25 < launched_later < 0.8  # new articles keep arriving; some existed from the start


def test_baskets_hold_related_articles(tiny) -> None:
    tx = tiny.transactions.merge(tiny.articles[["article_id", "department_no"]], on="article_id")
    pairs = tx.merge(tx, on=["customer_id", "t_dat"])
    pairs = pairs[pairs["article_id_x"] < pairs["article_id_y"]]
    same_dept_in_basket = (pairs["department_no_x"] == pairs["department_no_y"]).mean()
    shuffled = tx["department_no"].sample(frac=1.0, random_state=0).to_numpy()
    same_dept_at_random = (tx["department_no"].to_numpy() == shuffled).mean()
    assert same_dept_in_basket > 2 * same_dept_at_random


def test_repurchases_come_soon_after_the_first_purchase(sparse) -> None:
    # Gaps between a customer's consecutive purchase days of the same article, counted in
    # 28-day windows: re-buys decay with time (measured seed 0: 781, 201, 124, 84). Without
    # the recency decay the windows would hold about as many each.
    v = visits(sparse[0]).sort_values(["c", "a", "d"])
    c, a, d = (v[k].to_numpy() for k in "cad")
    same = (c[1:] == c[:-1]) & (a[1:] == a[:-1])
    gap = (d[1:] - d[:-1])[same]
    counts = [int(((gap >= lo) & (gap < lo + 28)).sum()) for lo in (1, 29, 57, 85)]
    assert counts[0] > 3 * counts[1] and counts[1] > counts[3], counts


def test_next_visit_holds_rebuys_partners_and_other_colours(sparse) -> None:
    # Rows of a visit within 28 days of the previous one: share that re-buy one of its articles,
    # are a stable partner of one ("bought next") or another colour of one's product code.
    # Measured (seed 0): 4.0% / 6.5% / 6.5% within 28 days, 0.2% / 0.5% / 0.5% after 90 days;
    # a random article would be a partner of one of ~3 earlier articles ~0.15% of the time.
    rows = next_visit_rows(*sparse)
    near, far = rows[rows["gap"] <= 28].mean(), rows[rows["gap"] > 90].mean()
    for signal in ("rebuy", "partner", "colour"):
        assert near[signal] > 0.03, (signal, near[signal])
        assert near[signal] > 4 * far[signal], (signal, near[signal], far[signal])


def test_trend_bursts_rise_and_fade(sparse) -> None:
    # Daily sales of articles with a strong burst (peak lift >= 3x) starting mid-data: the
    # month before the burst, around its peak, and four weeks after it has faded.
    # Measured (seed 0): 31 / 62 / 16 sales a day summed over those articles.
    ds, cat = sparse
    v = visits(ds)
    sales = np.zeros((len(cat.code), int(v["d"].max()) + 1))
    np.add.at(sales, (v["a"].to_numpy(), v["d"].to_numpy()), 1)
    before = peak = after = 0.0
    for slot in range(cat.trend_amp.shape[1]):
        strong = (cat.trend_amp[:, slot] >= 3) & (cat.trend_start[:, slot] > 100) & (cat.trend_start[:, slot] < 600)
        for i in np.flatnonzero(strong):
            start, rise = cat.trend_start[i, slot], cat.trend_rise[i, slot]
            before += sales[i, start - 28 : start].mean()
            peak += sales[i, start + rise // 2 : start + 2 * rise].mean()
            after += sales[i, start + 6 * rise : start + 6 * rise + 28].mean()
    assert peak > 1.5 * before and after < 0.5 * peak, (before, peak, after)


def test_photos_follow_shape_colour_and_pattern() -> None:
    rng = np.random.default_rng(0)
    size = (64, 96)
    trousers = silhouette("trousers", *size)
    dress = silhouette("dress", *size)
    assert (trousers != dress).mean() > 0.1  # different silhouettes

    red = np.asarray(render("Trousers", "Garment Lower body", "Red", "Solid", size, rng)).astype(float)
    garment = red[trousers]
    assert garment[:, 0].mean() > 150 and garment[:, 1].mean() < 80 and garment[:, 2].mean() < 80
    background = red[~trousers]
    assert background.mean() > 215

    def row_contrast(appearance: str) -> float:
        img = np.asarray(render("T-shirt", "Garment Upper body", "Blue", appearance, size, rng)).astype(float)
        mask = silhouette("top", *size)
        rows = np.where(mask, img.mean(axis=2), np.nan)[30:70, 20:44]
        return float(np.nanstd(np.nanmean(rows, axis=1)))

    assert row_contrast("Stripe") > 5 * row_contrast("Solid")  # horizontal stripes vary row by row


# --- command line ----------------------------------------------------------------------------


def test_cli_synth_and_stats(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "world"
    result = runner.invoke(cli, ["data", "synth", "--scale", "tiny", "--out", str(out), "--seed", "2", "--no-images"])
    assert result.exit_code == 0, result.output
    assert (out / "transactions_train.csv").exists() and not (out / "images").exists()
    result = runner.invoke(cli, ["data", "stats", "--data-dir", str(out), "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "repeat_share_ever" in result.output and "0.710" in result.output  # real online share column
    assert "within_2x" in result.output.splitlines()[0]
    figures = pd.read_json(tmp_path / "s.json", typ="series")
    assert figures["transactions"] == TINY.n_transactions


def test_cli_stats_refuses_a_missing_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["data", "stats", "--data-dir", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert "articles.csv not found" in result.output


def test_interrupted_generation_is_incomplete_and_not_data(tmp_path: Path, monkeypatch) -> None:
    def interrupted(path, rows):
        Path(path).write_text("t_dat,customer_id,article_id,price,sales_channel_id\n2020-09-01,")
        raise KeyboardInterrupt

    monkeypatch.setattr(world, "write_transactions", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_world(tmp_path, scale="tiny", seed=0, images=False)
    assert (tmp_path / "articles.csv").exists() and (tmp_path / "transactions_train.csv").exists()
    assert world_status(tmp_path) == "incomplete"
    assert not _has_data(tmp_path)  # `hmrec run` generates it again


def test_complete_world_is_trusted_until_a_csv_changes(tmp_path: Path) -> None:
    generate_world(tmp_path, scale="tiny", seed=0, images=False)
    assert world_status(tmp_path) == "complete" and _has_data(tmp_path)
    tx = tmp_path / "transactions_train.csv"
    tx.write_bytes(tx.read_bytes()[: tx.stat().st_size // 2])  # truncated after the fact
    assert world_status(tmp_path) == "incomplete" and not _has_data(tmp_path)
    (tmp_path / WORLD_MARKER).write_text('{"state": "comp')  # a marker cut short
    assert world_status(tmp_path) == "incomplete"


def test_csvs_without_a_marker_are_external_data(tmp_path: Path) -> None:
    assert world_status(tmp_path) == "missing" and not _has_data(tmp_path)
    (tmp_path / "articles.csv").write_text("article_id\n1\n")
    (tmp_path / "transactions_train.csv").write_text("t_dat\n")
    assert world_status(tmp_path) == "external" and _has_data(tmp_path)  # e.g. the Kaggle files


def baseline_scores(ds, cutoff: pd.Timestamp) -> tuple[int, dict[str, float]]:
    """(buyers of the week from ``cutoff``, MAP@12 of each baseline on it)."""
    tx = ds.transactions[ds.transactions["t_dat"] < cutoff + pd.Timedelta(days=7)]
    history, labels = split(tx, cutoff)
    truth = purchases_by_customer(labels)
    customers = sorted(truth)
    popular = popular_articles(history, 12, cutoff)
    return len(customers), {
        "random": map_at_k(random_recommendations(customers, ds.articles["article_id"], 12, seed=0), truth),
        "popular": map_at_k(dict.fromkeys(customers, popular), truth),
        "age_popular": map_at_k(age_popular_recommendations(history, ds.customers, customers, 12, cutoff), truth),
        "repurchase_popular": map_at_k(repurchase_popular_recommendations(history, customers, 12, cutoff), truth),
    }


@pytest.mark.slow
def test_small_world_orders_the_baselines_like_real_data(tmp_path: Path) -> None:
    ds = load_dataset(generate_world(tmp_path / "small", scale="small", seed=0, images=False))
    buyers, scores = baseline_scores(ds, pd.Timestamp(default_cutoff(ds.transactions)))
    assert 1800 < buyers < 3000  # about 5% of 50k customers buy in a given week (real 5.4%)
    # measured (seed 0): repurchase_popular 0.0214, age_popular 0.0141, popular 0.0087, random 0.0004
    assert scores["repurchase_popular"] > scores["age_popular"] > scores["popular"] > scores["random"], scores
    assert 0.015 < scores["repurchase_popular"] < 0.035, scores  # the issue-12 calibration band
    # Age helps, but only "a bit" more than the repeat signal would allow: repurchase stays on top.
    assert scores["repurchase_popular"] > 1.3 * scores["age_popular"], scores
    # ... while every figure of pipeline.data_stats.REAL_STATS stays within 2x of the real one.
    figures = world_stats(ds.transactions, ds.customers, ds.articles)
    out = {k: v for k, v in figures.items() if in_range(k, v) == "OUT"}
    assert not out, out
    assert sum(in_range(k, v) == "yes" for k, v in figures.items()) >= 45  # every real figure compared


@pytest.mark.slow
def test_sparse_world_orders_the_baselines_like_the_real_extract(tmp_path: Path) -> None:
    ds = load_dataset(generate_world(tmp_path / "sparse", scale="sparse", seed=0, images=False))
    last = pd.Timestamp(default_cutoff(ds.transactions))
    weeks = [baseline_scores(ds, last - pd.Timedelta(days=7 * w)) for w in range(6)]
    buyers = [b for b, _ in weeks]
    mean = pd.DataFrame([s for _, s in weeks]).mean()
    assert all(50 < b < 120 for b in buyers), buyers  # real extract: 65-90 buyers a week
    # measured (seed 0, mean of 6 weeks): repurchase_popular 0.0214, age_popular 0.0052, popular
    # 0.0056, random 0.0005 (real extract: repurchase_popular 0.0060, popular 0.0013). With ~40
    # rows per age band a week, age-band lists are mostly noise here: over 12 weeks of seeds
    # 0-2 age_popular sits a little below popular (0.0044/0.0048, 0.0063/0.0081,
    # 0.0055/0.0064), so only its place below repurchase is asserted.
    assert mean["repurchase_popular"] > 3 * mean["popular"] > 3 * mean["random"], mean.to_dict()
    assert mean["repurchase_popular"] > mean["age_popular"], mean.to_dict()
