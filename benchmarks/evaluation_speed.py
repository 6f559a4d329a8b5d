"""Time the baselines and the metrics on a random history of a chosen size.

Usage: python benchmarks/evaluation_speed.py [--rows 5000000] [--customers 300000]
       [--articles 50000] [--scored 70000] [--k 500]

The real data set has 31.8M rows, ~1.4M customers, ~105k articles and ~70k customers
buying in the final week. Prints one row per step: seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from pipeline.ranking_metrics import evaluate_rankings
from shared.baselines import (
    age_popular_recommendations,
    popular_articles,
    random_recommendations,
    repurchase_popular_recommendations,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--customers", type=int, default=300_000)
    parser.add_argument("--articles", type=int, default=50_000)
    parser.add_argument("--scored", type=int, default=70_000)
    parser.add_argument("--k", type=int, default=500)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    articles = np.array([f"{i:010d}" for i in range(args.articles)])
    customers = np.array([f"{i:064x}" for i in range(args.customers)])
    # Zipf-distributed article popularity: a long tail like the real catalogue's.
    article_index = np.minimum(rng.zipf(1.3, args.rows), args.articles) - 1
    history = pd.DataFrame(
        {
            "t_dat": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 260, args.rows), unit="D"),
            "customer_id": pd.array(customers[rng.integers(0, args.customers, args.rows)], dtype="str"),
            "article_id": pd.array(articles[article_index], dtype="str"),
        }
    )
    ages = pd.DataFrame(
        {"customer_id": pd.array(customers, dtype="str"), "age": rng.integers(16, 80, args.customers).astype("float32")}
    )
    scored = list(customers[: args.scored])
    truth = {c: {articles[i] for i in np.minimum(rng.zipf(1.3, 3), args.articles) - 1} for c in scored}

    print(
        f"{args.rows:,} rows, {args.customers:,} customers, {args.articles:,} articles, "
        f"{args.scored:,} scored, k={args.k}"
    )
    print(f"{'step':<22} {'seconds':>8}")
    steps = {
        "popular": lambda: dict.fromkeys(scored, popular_articles(history, args.k)),
        "random": lambda: random_recommendations(scored, history["article_id"], args.k),
        "age_popular": lambda: age_popular_recommendations(history, ages, scored, args.k),
        "repurchase_popular": lambda: repurchase_popular_recommendations(history, scored, args.k),
    }
    for name, step in steps.items():
        start = time.perf_counter()
        predictions = step()
        built = time.perf_counter() - start
        start = time.perf_counter()
        evaluate_rankings(predictions, truth)
        print(f"{name:<22} {built:>8.2f}")
        print(f"{'  scoring it':<22} {time.perf_counter() - start:>8.2f}")


if __name__ == "__main__":
    main()
