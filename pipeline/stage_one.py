"""Stage one as the ranker sees it: two-tower candidates, the customer's own recent purchases
and this week's best sellers of their age band.

Repurchases are frequent in fashion, but a retrieval model that looks for *similar*
articles ranks the exact ones already bought only sometimes in its top 100; and a two-tower
trained with the log-q correction deliberately discounts popularity, so a fast-rising article
can miss its top 100 while the ranker's sales features would have pushed it up. So the
ranker's input for a customer is

- the two-tower's top ``top_k`` articles (no threshold, no filter),
- up to ``max_repurchase`` of their own purchases of the repurchase window before the
  cutoff (most recent first; ``shared.baselines.repurchase_ranking``), and
- the ``max_popular`` best sellers of the last week in their age band
  (``shared.baselines.age_popular_recommendations``),

every candidate scored with the same two-tower cosine (the repurchases get their exact
query-article cosine, not a made-up value), so the score and rank features mean one thing.
Training weeks and the evaluated week use this same function; only the pipeline composes
the two services, so it lives here and not in either service.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_TOP_K = 100
DEFAULT_MAX_REPURCHASE = 20


def two_tower_scores(model: Any, dataset: Any, cutoff: date, customer_ids: np.ndarray,
                     article_ids: np.ndarray) -> np.ndarray:
    """Cosine of each (customer, article) pair under ``model`` with features as of ``cutoff``;
    NaN for articles the model's catalogue lacks."""
    from services.candidate.features import query_features

    uniq, inverse = np.unique(customer_ids.astype(str), return_inverse=True)
    feats = query_features(model.space, dataset.customers, dataset.transactions, uniq.astype(object),
                           pd.Timestamp(cutoff))
    queries = model.encode(feats)
    positions = model.space.article_index(article_ids) - 1      # article_index is 1-based, 0 = unknown
    emb = model.index.embeddings
    safe = np.maximum(positions, 0)
    scores = np.einsum("nd,nd->n", queries[inverse], emb[safe]).astype(np.float64)
    return np.where(positions >= 0, scores, np.nan)


def _scored_pairs(model: Any, dataset: Any, cutoff: date, lists: dict[str, list[str]], limit: int,
                  source: str) -> pd.DataFrame | None:
    """The first ``limit`` articles of each customer's list, scored by the two-tower."""
    pairs = [(c, a) for c, items in lists.items() for a in items[:limit]]
    if not pairs:
        return None
    frame = pd.DataFrame(pairs, columns=["customer_id", "article_id"])
    frame["score"] = two_tower_scores(model, dataset, cutoff, frame["customer_id"].to_numpy(dtype=object),
                                      frame["article_id"].to_numpy(dtype=object))
    # An article the two-tower never saw has no cosine: it cannot be scored consistently, drop it.
    return frame.dropna(subset=["score"]).assign(source=source)


def ranker_candidates(two_tower: Path | Any, dataset: Any, cutoff: date, customer_ids: list[str],
                      top_k: int = DEFAULT_TOP_K, max_repurchase: int = DEFAULT_MAX_REPURCHASE,
                      max_popular: int = 0) -> pd.DataFrame:
    """customer_id, article_id, score (two-tower cosine), source ('two_tower', 'repurchase' or 'popular')."""
    from services.candidate.artifact import load_two_tower
    from services.candidate.infer import generate_candidates
    from services.candidate.settings import NO_FILTERS
    from shared.baselines import age_popular_recommendations, repurchase_ranking
    from shared.split import history_before

    model = two_tower if not isinstance(two_tower, (str, Path)) else load_two_tower(Path(two_tower))
    tt = generate_candidates(model, dataset, cutoff, customer_ids, top_k=top_k, threshold=None, filters=NO_FILTERS)
    tt = tt[["customer_id", "article_id", "score"]].assign(source="two_tower")
    frames = [tt.astype({"score": np.float64})]
    history = history_before(dataset.transactions, cutoff) if (max_repurchase or max_popular) else None
    if max_repurchase > 0:
        own = repurchase_ranking(history, customer_ids, cutoff)
        frames.append(_scored_pairs(model, dataset, cutoff, own, max_repurchase, "repurchase"))
    if max_popular > 0:
        popular = age_popular_recommendations(history, dataset.customers, customer_ids, max_popular, cutoff)
        frames.append(_scored_pairs(model, dataset, cutoff, popular, max_popular, "popular"))
    out = pd.concat([f for f in frames if f is not None], ignore_index=True)
    out["customer_id"] = out["customer_id"].astype(str)
    out["article_id"] = out["article_id"].astype(str)
    # An article several sources found keeps its first row (two-tower, then repurchase, then popular).
    return out.drop_duplicates(["customer_id", "article_id"], keep="first").reset_index(drop=True)
