"""The synthetic worlds order the baselines like the real data set (slow: ~10-30 s each).

On real H&M data a customer's own recent purchases, then what sells now, beat age-band
popularity, which beats global popularity, which beats random; learned retrieval alone is
weaker than repurchase + popular. The generator is calibrated for that (docs/synthetic.md);
these tests guard the baseline part on `small` (seed 0, the world `make run` builds) and on
`sparse` (1,500 customers' complete histories, scored over six weekly cutoffs like the real
extract). The two-tower part needs training and is measured in docs/synthetic.md instead.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.data_stats import in_range, world_stats
from pipeline.ranking_metrics import map_at_k
from pipeline.synthetic import generate_world
from shared.baselines import (
    age_popular_recommendations,
    popular_articles,
    random_recommendations,
    repurchase_popular_recommendations,
)
from shared.data import load_dataset
from shared.split import default_cutoff, purchases_by_customer, split


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
