"""Stage one as the ranker sees it: two-tower candidates plus the customer's own recent purchases.

Repurchases are frequent in fashion, but a retrieval model that looks for *similar*
articles ranks the exact ones already bought only sometimes in its top 100. So the
ranker's input for a customer is

- the two-tower's top ``top_k`` articles (no threshold, no filter), and
- up to ``max_repurchase`` of their own purchases of the repurchase window before the
  cutoff (most recent first; ``shared.baselines.repurchase_ranking``),

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


def ranker_candidates(two_tower: Path | Any, dataset: Any, cutoff: date, customer_ids: list[str],
                      top_k: int = DEFAULT_TOP_K, max_repurchase: int = DEFAULT_MAX_REPURCHASE) -> pd.DataFrame:
    """customer_id, article_id, score (two-tower cosine), source ('two_tower' or 'repurchase')."""
    from services.candidate.artifact import load_two_tower
    from services.candidate.infer import generate_candidates
    from services.candidate.settings import NO_FILTERS
    from shared.baselines import repurchase_ranking
    from shared.split import history_before

    model = two_tower if not isinstance(two_tower, (str, Path)) else load_two_tower(Path(two_tower))
    tt = generate_candidates(model, dataset, cutoff, customer_ids, top_k=top_k, threshold=None, filters=NO_FILTERS)
    tt = tt[["customer_id", "article_id", "score"]].assign(source="two_tower")
    frames = [tt.astype({"score": np.float64})]
    if max_repurchase > 0:
        own = repurchase_ranking(history_before(dataset.transactions, cutoff), customer_ids, cutoff)
        pairs = [(c, a) for c, items in own.items() for a in items[:max_repurchase]]
        if pairs:
            rep = pd.DataFrame(pairs, columns=["customer_id", "article_id"])
            rep["score"] = two_tower_scores(model, dataset, cutoff, rep["customer_id"].to_numpy(dtype=object),
                                            rep["article_id"].to_numpy(dtype=object))
            # An article the two-tower never saw has no cosine: it cannot be scored consistently, drop it.
            frames.append(rep.dropna(subset=["score"]).assign(source="repurchase"))
    out = pd.concat(frames, ignore_index=True)
    out["customer_id"] = out["customer_id"].astype(str)
    out["article_id"] = out["article_id"].astype(str)
    # A repurchase the two-tower also retrieved keeps its two-tower row.
    return out.drop_duplicates(["customer_id", "article_id"], keep="first").reset_index(drop=True)
