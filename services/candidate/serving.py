"""Candidates for one customer, as the service answers them.

Which path serves a customer:

1. In the model's customer vocabulary (bought before the cutoff): the query tower with
   their stored features and history (plus ``recent_article_ids`` first, if sent).
2. Not in the vocabulary but with a history (stored, or ``recent_article_ids``): the query
   tower with the out-of-vocabulary id, their features and that history. ``cold_start``.
3. No history: the popular list of their age band (overall popular when we know nothing
   about them). ``cold_start``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from services.candidate.artifact import LoadedTwoTower, load_two_tower
from services.candidate.infer import allowed_articles
from services.candidate.settings import FilterConfig


@dataclass
class ServingModel:
    """A loaded two-tower plus the filter mask the service applies to every answer."""

    model: LoadedTwoTower
    allowed: np.ndarray

    @property
    def version(self) -> str:
        return self.model.version

    @classmethod
    def load(cls, path: Path, filters: FilterConfig | None = None) -> ServingModel:
        model = load_two_tower(path, warm=True)
        filters = filters or FilterConfig()
        as_of = pd.Timestamp(model.metadata["features_as_of"])
        allowed = allowed_articles(model, model.article_stats, filters, as_of)
        if not allowed.any():  # a filter that removes everything is a misconfiguration, not an answer
            allowed = np.ones_like(allowed)
        served = cls(model, allowed)
        # Warm both request paths once: popular lists, and query tower + index (a history-only query).
        served.recommend("0" * 64, 10, None)
        served.recommend("0" * 64, 10, [str(model.space.article_ids[0])])
        return served

    def recommend(self, customer_id: str, k: int, recent_article_ids: list[str] | None
                  ) -> tuple[bool, list[tuple[str, float]]]:
        """(cold_start, [(article_id, score)] best first, at most ``k``)."""
        m = self.model
        feats, found = m.snapshot_features([customer_id])
        if recent_article_ids:
            feats["history"] = merge_history(m.space.article_index(recent_article_ids), feats["history"][0],
                                             m.space.history_len)[None, :]
        known = bool(feats["customer_idx"][0] > 0)
        has_history = bool((feats["history"][0] > 0).any())
        if known or has_history:
            idx, sc = m.index.search(m.encode(feats), k, self.allowed)
            keep = idx[0] >= 0
            arts = m.space.article_ids[idx[0][keep]]
            return (not known), [(str(a), float(s)) for a, s in zip(arts, sc[0][keep], strict=True)]
        band = str(int(feats["age_bucket"][0])) if found[0] else "all"
        items = m.popular.get(band) or m.popular["all"]
        items = items[:k]
        # Popular lists carry no similarity; a rank-decaying score keeps "higher is better".
        return True, [(a, float(1.0 - r / max(len(items), 1))) for r, a in enumerate(items)]


def merge_history(recent: np.ndarray, stored: np.ndarray, length: int) -> np.ndarray:
    """Recent articles first (unknown ids dropped), then stored history; distinct, padded to ``length``.

    e.g. recent [7, 0, 3], stored [3, 5, 0, 0], length 4 -> [7, 3, 5, 0]
    """
    out: list[int] = []
    for a in list(recent) + list(stored):
        a = int(a)
        if a > 0 and a not in out:
            out.append(a)
        if len(out) == length:
            break
    return np.array(out + [0] * (length - len(out)), dtype=np.int32)
