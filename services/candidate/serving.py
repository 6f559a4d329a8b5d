"""Stage one for one customer, as the candidate service answers it.

The service answers with :func:`services.candidate.stage_one.stage_one_frame`, the function that
made the ranker's training lists, the evaluated lists and the batch file: the two-tower's
nearest neighbours (query inputs from the model's snapshot, ``recent_article_ids`` first)
merged with repurchase, co-purchase, other colours, age-band trending and last week's best
sellers, from the tables exported with the model (built strictly before its cutoff).

``cold_start`` is true for a customer with no purchase before the cutoff: their list is the
two-tower's guess from their profile (and the ``recent_article_ids`` sent, which also seed
the repurchase, co-purchase and other-colour sources), their age band's trending articles
and the best sellers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from services.candidate.artifact import LoadedTwoTower, load_two_tower
from services.candidate.stage_one import (
    TABLES_SUBDIR,
    StageOneConfig,
    StageOneLists,
    StageOneTables,
    stage_one_frame,
    stage_one_lists,
)
from services.candidate.two_tower_source import TwoTowerSource, merge_history
from shared.contract.schemas import CANDIDATE_SOURCES
from shared.contract.wire import Wire

__all__ = ["ServingModel", "merge_history"]


@dataclass
class ServingModel:
    """A loaded two-tower, its stage-one tables and the stage-one sizes."""

    model: LoadedTwoTower
    source: TwoTowerSource
    tables: StageOneTables
    config: StageOneConfig

    @property
    def version(self) -> str:
        return self.model.version

    @classmethod
    def load(cls, path: Path, config: StageOneConfig | None = None, not_sold_weeks: int | None = None) -> ServingModel:
        """``config``: default the model's own stage-one settings (what was evaluated);
        ``not_sold_weeks``: an operator's override of that one setting."""
        model = load_two_tower(path, warm=True)
        if model.metadata.get("serving_files") is False:
            raise ValueError(
                f"{path} was trained for batch stage one only (a ranker training week's model: no customer "
                "snapshot, no stage-one tables); serve a model from `hmrec train candidate`"
            )
        config = config or StageOneConfig.from_dict(model.metadata.get("stage_one"))
        if not_sold_weeks is not None:
            config = replace(config, not_sold_weeks=not_sold_weeks)
        tables = StageOneTables.load(Path(path) / TABLES_SUBDIR)
        served = cls(model, TwoTowerSource.serving(model, config.not_sold_weeks), tables, config)
        # Warm both request paths once: a customer without history, and one with a recent article.
        served.recommend("0" * 64, 10, None)
        served.recommend("0" * 64, 10, [str(model.space.article_ids[0])])
        return served

    def candidates(self, customer_id: str, recent_article_ids: list[str] | None) -> pd.DataFrame:
        recent = [list(recent_article_ids)] if recent_article_ids else None
        return stage_one_frame(self.tables, self.source, [customer_id], self.config, recent)

    def _lists(self, customer_id: str, recent_article_ids: list[str] | None) -> tuple[bool, StageOneLists]:
        """(cold_start, one customer's stage-one lists): what both request wires are written from."""
        recent = [list(recent_article_ids)] if recent_article_ids else None
        lists = stage_one_lists(self.tables, self.source, [customer_id], self.config, recent)
        cold = bool((self.tables.customer_rows(np.array([customer_id], dtype=object)) < 0)[0])
        return cold, lists

    def recommend(
        self, customer_id: str, k: int, recent_article_ids: list[str] | None
    ) -> tuple[bool, list[tuple[str, float, dict[str, float]]]]:
        """(cold_start, [(article_id, two-tower cosine, {source: score})] in stage-one order, at most ``k``).

        The same lists as :meth:`candidates` (one function), without building a DataFrame:
        per request that cost more than the sources themselves."""
        cold, lists = self._lists(customer_id, recent_article_ids)
        ids = self.tables.article_ids[lists.article[:k]].tolist()
        cosine = lists.cosine[:k].astype(np.float64).tolist()
        values = lists.values[:k].astype(np.float64).tolist()
        names = CANDIDATE_SOURCES
        items = [
            (a, s, {n: v for n, v in zip(names, row, strict=True) if v > 0})
            for a, s, row in zip(ids, cosine, values, strict=True)
        ]
        return cold, items

    def answer_json(
        self, customer_id: str, k: int, recent_article_ids: list[str] | None, wire: Wire = "objects"
    ) -> bytes:
        """The ``/candidates`` answer (shared.contract.schemas.CandidateResponse, or with ``wire="columns"``
        shared.contract.wire.CandidateColumns) as JSON bytes.

        Written straight from the lists: building 200 pydantic objects, validating them
        again as the route's response and encoding them took longer than stage one itself."""
        if wire == "columns":
            return self.answer_columns(customer_id, k, recent_article_ids)
        cold, items = self.recommend(customer_id, k, recent_article_ids)
        return orjson.dumps(
            {
                "customer_id": customer_id,
                "model_version": self.version,
                "cold_start": cold,
                "candidates": [{"article_id": a, "score": s, "sources": src} for a, s, src in items],
            }
        )

    def answer_columns(self, customer_id: str, k: int, recent_article_ids: list[str] | None) -> bytes:
        """The same list as :meth:`answer_json`'s objects, as columns (shared.contract.wire.CandidateColumns):
        no per-candidate dicts at all. Scores are the float64 the objects carry; sources the
        float32 the ranker reads (shared.contract.candidate_sources), 0 where the objects leave a source out
        (not proposed, or not > 0)."""
        cold, lists = self._lists(customer_id, recent_article_ids)
        values = lists.values[:k]
        sources = np.ascontiguousarray(np.where(values > 0, values, 0.0).astype(np.float32).T)
        return orjson.dumps(
            {
                "customer_id": customer_id,
                "model_version": self.version,
                "cold_start": cold,
                "article_ids": self.tables.article_ids[lists.article[:k]].tolist(),
                "scores": lists.cosine[:k].astype(np.float64).tolist(),
                "sources": {name: sources[j] for j, name in enumerate(CANDIDATE_SOURCES)},
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
