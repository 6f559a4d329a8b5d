"""The two-tower as one source of stage one (services/candidate/stage_one.py).

Two ways to get a customer's query inputs, both "history strictly before the cutoff":

- ``offline``: computed from the transactions at a cutoff (training weeks, evaluation,
  the batch file); the article index is the model's stored one when the cutoff is the
  model's own (else re-embedded with the article features as of that day);
- ``serving``: the snapshot the model was exported with (computed by the same
  ``query_features`` at export), plus the ``recent`` articles a request sends first.

At the model's own cutoff the two give the same vectors; tests/candidate prove it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from services.candidate.artifact import LoadedTwoTower
from services.candidate.features import QueryFeatureTable, article_dynamic_features, article_stats, query_features
from services.candidate.index import ExactIndex
from services.candidate.infer import allowed_articles, features_date
from services.candidate.settings import FilterConfig
from services.candidate.stage_one import SourceRows, StageOneConfig, StageOneTables


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


@dataclass
class TwoTowerSource:
    model: LoadedTwoTower
    index: ExactIndex
    allowed: np.ndarray  # bool per model article: the not-sold filter
    as_of: pd.Timestamp
    features_for: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None  # None: the snapshot
    _mapped: StageOneTables | None = field(default=None, repr=False)
    _to_table: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    _to_model: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    @classmethod
    def serving(cls, model: LoadedTwoTower, not_sold_weeks: int) -> TwoTowerSource:
        as_of = pd.Timestamp(model.metadata["features_as_of"])
        allowed = allowed_articles(model, model.article_stats, FilterConfig(not_sold_weeks=not_sold_weeks), as_of)
        return cls(model, model.index, _never_empty(allowed), as_of)

    @classmethod
    def offline(
        cls,
        model: LoadedTwoTower,
        dataset: object,
        cutoff: date | None,
        not_sold_weeks: int,
        batch_ids: np.ndarray | None = None,
    ) -> TwoTowerSource:
        """Query inputs from the transactions as of ``cutoff``; ``batch_ids``: the customers a
        batch will ask for in many chunks, whose inputs are computed once up front."""
        as_of = features_date(model, cutoff)
        tx = dataset.transactions  # type: ignore[attr-defined]
        if as_of == pd.Timestamp(model.metadata["features_as_of"]):
            index, stats = model.index, model.article_stats
        else:  # article vectors depend on recent sales: re-embed as of that day
            index = ExactIndex(model.model.article_embeddings(article_dynamic_features(model.space, tx, as_of)))
            stats = article_stats(model.space.article_ids, tx, as_of)
        allowed = allowed_articles(model, stats, FilterConfig(not_sold_weeks=not_sold_weeks), as_of)

        customers = dataset.customers  # type: ignore[attr-defined]
        if batch_ids is not None:  # the batch's inputs once, not a rescan of the transactions per chunk
            table = QueryFeatureTable(model.space, customers, tx, as_of, batch_ids)
            return cls(model, index, _never_empty(allowed), as_of, table)

        def features_for(ids: np.ndarray) -> dict[str, np.ndarray]:
            return query_features(model.space, customers, tx, ids, as_of)

        return cls(model, index, _never_empty(allowed), as_of, features_for)

    @property
    def version(self) -> str:
        return self.model.version

    def queries(self, customer_ids: np.ndarray, recent: list[list[str]] | None = None) -> np.ndarray:
        """float32 [n, dim] query vectors; ``recent[i]`` is put first in query ``i``'s history."""
        m = self.model
        if self.features_for is not None:
            feats = self.features_for(np.asarray(customer_ids, dtype=object))
        else:
            feats, _ = m.snapshot_features([str(c) for c in customer_ids])
        if recent:
            for i, items in enumerate(recent):
                if items:
                    feats["history"][i] = merge_history(
                        m.space.article_index(items), feats["history"][i], m.space.history_len
                    )
        return m.encode(feats)

    def _mapping(self, tables: StageOneTables) -> tuple[np.ndarray, np.ndarray]:
        """(model article -> table position, table article -> model row), -1 where absent;
        computed once per tables object (held here, so a new one is always noticed)."""
        if self._mapped is not tables:
            self._to_table = tables.article_positions(self.model.space.article_ids).astype(np.int64)
            self._to_model = self.model.space.article_index(tables.article_ids).astype(np.int64) - 1
            self._mapped = tables
        return self._to_table, self._to_model

    def nearest(self, queries: np.ndarray, config: StageOneConfig, tables: StageOneTables) -> SourceRows:
        """The ``two_tower_k`` nearest allowed articles per query (at or above ``threshold``)."""
        k = min(config.two_tower_k, int(self.allowed.sum()))
        if k <= 0 or not len(queries):
            z = np.zeros(0, np.int64)
            return SourceRows(z, z, z.astype(np.float64))
        idx, scores = self.index.search(queries, k, self.allowed)
        rows = np.repeat(np.arange(len(queries)), idx.shape[1])
        idx, scores = idx.ravel(), scores.ravel().astype(np.float64)
        ok = idx >= 0
        if config.threshold is not None:
            ok &= scores >= config.threshold
        article = self._mapping(tables)[0][np.maximum(idx, 0)]
        ok &= article >= 0
        return SourceRows(rows[ok], article[ok], scores[ok])

    def cosine(self, queries: np.ndarray, rows: np.ndarray, articles: np.ndarray, tables: StageOneTables) -> np.ndarray:
        """float32 cosine of each (query row, table article position); 0 for an article the model lacks."""
        pos = self._mapping(tables)[1][articles]
        emb = self.index.embeddings
        out = np.einsum("nd,nd->n", queries[rows], emb[np.maximum(pos, 0)]).astype(np.float32)
        return np.where(pos >= 0, out, 0.0).astype(np.float32)


def _never_empty(allowed: np.ndarray) -> np.ndarray:
    # A filter that removes everything is a misconfiguration, not an answer.
    return allowed if allowed.any() else np.ones_like(allowed)
