"""The non-learned baselines, computed from the history before the evaluation cutoff.

The four classic ones (random, popular, age_popular, repurchase_popular: own purchases of
the last 4 weeks, then best sellers) and the strong public variants the publish gate must
beat: ``recent_popular`` (the customer's 12 most recent distinct articles over the whole
history, then last week's best sellers; 0.0082 on held-back real rows, above
``repurchase_popular``'s 0.0060), ``decayed_popular`` (time-decayed popularity),
``age_trending`` (growth-weighted trending in the age band) and ``recent_trending``.

They need no artifacts, so they are always available. Everything they read is
``ctx.history`` (rows strictly before ``ctx.cutoff``) and the customers' ages.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.evaluation import EvalContext
from shared.baselines import (
    age_popular_recommendations,
    age_trending_recommendations,
    decayed_popular_articles,
    popular_articles,
    random_recommendations,
    repurchase_popular_recommendations,
    repurchase_ranking,
    repurchase_then,
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

    def recent_popular(customers: list[str]) -> dict[str, list[str]]:
        own = repurchase_ranking(history, customers, cutoff, window_days=None)
        return repurchase_then(own, popular_articles(history, k, cutoff), customers, k)

    def decayed_popular(customers: list[str]) -> dict[str, list[str]]:
        return dict.fromkeys(customers, decayed_popular_articles(history, k, cutoff))

    def age_trending(customers: list[str]) -> dict[str, list[str]]:
        return age_trending_recommendations(history, ctx.dataset.customers, customers, k, cutoff)

    def recent_trending(customers: list[str]) -> dict[str, list[str]]:
        own = repurchase_ranking(history, customers, cutoff, window_days=None)
        return repurchase_then(own, age_trending(customers), customers, k)

    return {
        "random": random,
        "popular": popular,
        "age_popular": age_popular,
        "repurchase_popular": repurchase_popular,
        "recent_popular": recent_popular,
        "decayed_popular": decayed_popular,
        "age_trending": age_trending,
        "recent_trending": recent_trending,
    }
