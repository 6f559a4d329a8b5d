"""The four non-learned baselines, computed from the history before the evaluation cutoff.

They need no artifacts, so they are always available. Everything they read is
``ctx.history`` (rows strictly before ``ctx.cutoff``) and the customers' ages.
"""
from __future__ import annotations

from collections.abc import Callable

from pipeline.evaluation import EvalContext
from shared.baselines import (
    age_popular_recommendations,
    popular_articles,
    random_recommendations,
    repurchase_popular_recommendations,
)


def build_methods(ctx: EvalContext) -> dict[str, Callable[[list[str]], dict[str, list[str]]]]:
    history, cutoff, k = ctx.history, ctx.cutoff, ctx.k

    def random(customers: list[str]) -> dict[str, list[str]]:
        # Articles sold at least once before the cutoff: the catalogue a shop could show.
        return random_recommendations(customers, history["article_id"], k, seed=ctx.seed)

    def popular(customers: list[str]) -> dict[str, list[str]]:
        top = popular_articles(history, k, cutoff)
        return dict.fromkeys(customers, top)

    def age_popular(customers: list[str]) -> dict[str, list[str]]:
        return age_popular_recommendations(history, ctx.dataset.customers, customers, k, cutoff)

    def repurchase_popular(customers: list[str]) -> dict[str, list[str]]:
        return repurchase_popular_recommendations(history, customers, k, cutoff)

    return {
        "random": random,
        "popular": popular,
        "age_popular": age_popular,
        "repurchase_popular": repurchase_popular,
    }
