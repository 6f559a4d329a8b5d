"""Tune the baselines' windows on a validation week, and time the baselines and the scoring.

Usage: python benchmarks/baseline_windows.py --data-dir DIR [--weeks-back 1]

Windows are chosen on the week *before* the evaluation week (``--weeks-back 1``), never on
the week that is reported, so the table of ``hmrec evaluate`` stays an honest estimate.
Prints one table per baseline: window (days), MAP@12, seconds.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

from pipeline.evaluation import load_context, make_context
from pipeline.ranking_metrics import evaluate_rankings
from shared.baselines import (
    age_popular_recommendations,
    popular_articles,
    repurchase_popular_recommendations,
)
from shared.config import get_paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--output-dir", default="output")
    parser.add_argument("--weeks-back", type=int, default=1, help="validation week = evaluation week - N weeks")
    args = parser.parse_args()

    base = load_context(get_paths(args.data_dir, args.output_dir), k=12)
    ctx = make_context(base.dataset, base.paths, base.cutoff - timedelta(days=7 * args.weeks_back), k=12)
    print(f"validation week from {ctx.cutoff} ({len(ctx.customers)} customers); evaluation week from {base.cutoff}")

    def run(name: str, window: int | None, predict) -> None:  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        predictions = predict()
        seconds = time.perf_counter() - start
        score = evaluate_rankings(predictions, ctx.labels)["map@12"]
        print(f"{name:<20} {str(window):>6} {score:>9.5f} {seconds:>8.2f}")

    print(f"{'baseline':<20} {'window':>6} {'map@12':>9} {'seconds':>8}")
    for window in (7, 14, 28):
        run(
            "popular",
            window,
            lambda w=window: dict.fromkeys(ctx.customers, popular_articles(ctx.history, 12, ctx.cutoff, w)),
        )
    for window in (7, 14, 28):
        run(
            "age_popular",
            window,
            lambda w=window: age_popular_recommendations(
                ctx.history, ctx.dataset.customers, ctx.customers, 12, ctx.cutoff, w
            ),
        )
    for window in (7, 14, 28, 56, 112, None):
        run(
            "repurchase_popular",
            window,
            lambda w=window: repurchase_popular_recommendations(
                ctx.history, ctx.customers, 12, ctx.cutoff, repurchase_window_days=w
            ),
        )


if __name__ == "__main__":
    main()
