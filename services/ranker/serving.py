"""A loaded ranker artifact: feature store + exported MMoE + combined-score weights.

Used by the ``/rank`` route, the batch re-ranker and the evaluation method, so all three
score candidates the same way. Loading checks the artifact's feature schema against this
code's before anything is served.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from services.ranker.baseline_order import BaselineOrder
from services.ranker.features import FEATURE_NAMES, FeatureStore, compute_features, compute_row_features
from services.ranker.model import DEFAULT_SCORE_WEIGHTS, NumpyMMoE
from services.ranker.session_features import apply_session
from shared.artifacts import ArtifactError, read_metadata
from shared.contract.candidate_sources import source_matrix, source_matrix_from_columns, source_matrix_from_dicts
from shared.contract.schemas import Candidate
from shared.contract.wire import RankColumnsRequest

STORE_SUBDIR = "feature_store"
MODEL_SUBDIR = "model"
SCHEMA_FILE = "feature_schema.json"


@dataclass
class RankedList:
    article_ids: list[str]
    scores: np.ndarray  # combined score, best first
    task_scores: dict[str, np.ndarray]  # per task, same order


@dataclass
class LoadedRanker:
    version: str
    model: NumpyMMoE | BaselineOrder
    store: FeatureStore
    score_weights: dict[str, float]
    metadata: dict

    @property
    def ordering(self) -> str:
        """``mmoe``, or ``baseline:<name>`` when the publish gate chose a baseline's order."""
        return str(self.metadata.get("ordering", "mmoe"))

    @classmethod
    def load(cls, directory: Path, score_weights: dict[str, float] | None = None) -> LoadedRanker:
        directory = Path(directory)
        meta = read_metadata(directory)
        schema = json.loads((directory / SCHEMA_FILE).read_text())
        if schema.get("feature_names") != FEATURE_NAMES:
            raise ArtifactError(f"{directory}: feature schema differs from this code's; retrain the ranker")
        ordering = str(meta.get("ordering", "mmoe"))
        model: NumpyMMoE | BaselineOrder = (
            BaselineOrder(ordering.split(":", 1)[1])
            if ordering.startswith("baseline:")
            else NumpyMMoE.load(directory / MODEL_SUBDIR)
        )
        store = FeatureStore.load(directory / STORE_SUBDIR)
        weights = dict(score_weights or meta.get("score_weights") or DEFAULT_SCORE_WEIGHTS)
        unknown = set(weights) - set(model.task_names)
        if unknown:
            raise ArtifactError(f"score weights name tasks the model lacks: {sorted(unknown)}")
        ranker = cls(str(meta.get("version", directory.name)), model, store, weights, meta)
        ranker.warm_up()
        return ranker

    @property
    def task_names(self) -> list[str]:
        return self.model.task_names

    def warm_up(self) -> None:
        """One call through every code path so the first request is not the slow one."""
        ids = list(self.store.article_ids[:5]) or ["0000000000"]
        self.rank("0" * 64, ids, np.linspace(1.0, 0.0, len(ids)), k=3)

    def score_rows(
        self,
        customer_ids: np.ndarray,
        article_ids: np.ndarray,
        scores: np.ndarray,
        sources: np.ndarray | None = None,
        recent: dict[str, list[str]] | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(combined score, per-task scores) for candidate rows of any number of customers;
        ``sources``: their stage-one source scores (shared.contract.candidate_sources.source_matrix); ``recent``:
        each customer's session articles (services/ranker/session_features.py)."""
        features = apply_session(
            compute_features(self.store, customer_ids, article_ids, scores, sources), customer_ids, article_ids, recent
        )
        task_scores = self.model.predict(features)
        return self.model.combined(task_scores, self.score_weights), task_scores

    def score_store_rows(
        self, customer: np.ndarray, article: np.ndarray, group: np.ndarray, scores: np.ndarray, sources: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """:meth:`score_rows` for rows already looked up in the store (no session): the batch
        re-ranker's path (services/ranker/rerank.py), ``group`` an int naming each row's customer."""
        task_scores = self.model.predict(compute_row_features(self.store, customer, article, group, scores, sources))
        return self.model.combined(task_scores, self.score_weights), task_scores

    def rank(
        self,
        customer_id: str,
        article_ids: list[str],
        scores: np.ndarray | list[float],
        k: int,
        sources: np.ndarray | None = None,
        recent: list[str] | None = None,
    ) -> RankedList:
        """The top ``min(k, n)`` of one customer's candidates, best first (duplicates kept once)."""
        if len(set(article_ids)) != len(article_ids):
            first: dict[str, int] = {}
            for i, a in enumerate(article_ids):
                first.setdefault(a, i)  # a repeated article keeps its first score and sources
            keep = list(first.values())
            article_ids = list(first)
            scores = [scores[i] for i in keep]
            sources = None if sources is None else sources[keep]
        n = len(article_ids)
        if n == 0:
            return RankedList([], np.zeros(0), {t: np.zeros(0) for t in self.task_names})
        combined, task_scores = self.score_rows(
            np.full(n, customer_id, dtype=object),
            np.asarray(article_ids, dtype=object),
            np.asarray(scores, dtype=np.float64),
            sources,
            {customer_id: recent} if recent else None,
        )
        top = np.argsort(-combined, kind="stable")[: min(k, n)]
        return RankedList([article_ids[i] for i in top], combined[top], {t: s[top] for t, s in task_scores.items()})

    def answer_json(
        self, customer_id: str, candidates: Sequence[Candidate], k: int, recent: list[str] | None = None
    ) -> bytes:
        """The ``/rank`` answer (shared.contract.schemas.RankResponse) as JSON bytes, written from the
        arrays: as pydantic objects, validated again and encoded, it cost more than scoring."""
        ranked = self.rank(
            customer_id,
            [c.article_id for c in candidates],
            [c.score for c in candidates],
            k,
            source_matrix_from_dicts(c.sources for c in candidates),
            recent,
        )
        tasks = list(ranked.task_scores)
        per_task = [ranked.task_scores[t].astype(np.float64).tolist() for t in tasks]
        rows = [
            {"article_id": a, "score": s, "task_scores": dict(zip(tasks, values, strict=True))}
            for a, s, *values in zip(
                ranked.article_ids, ranked.scores.astype(np.float64).tolist(), *per_task, strict=True
            )
        ]
        return orjson.dumps({"model_version": self.version, "ordering": self.ordering, "ranked": rows})

    def answer_columns(self, body: RankColumnsRequest) -> bytes:
        """``/rank?wire=columns`` (shared.contract.wire.RankColumnsRequest -> RankColumns) as JSON bytes:
        the same ranking as :meth:`answer_json` of the same candidates, read from and written as
        columns (no task scores: the gateway orders by the combined score only)."""
        sources = source_matrix_from_columns(body.sources, len(body.article_ids))
        ranked = self.rank(body.customer_id, body.article_ids, body.scores, body.k, sources, body.recent_article_ids)
        return orjson.dumps(
            {
                "model_version": self.version,
                "ordering": self.ordering,
                "article_ids": ranked.article_ids,
                "scores": ranked.scores.astype(np.float64).tolist(),
            }
        )

    def rerank_frame(
        self, candidates: pd.DataFrame, k: int | None = None, recent: dict[str, list[str]] | None = None
    ) -> pd.DataFrame:
        """Re-rank a candidate frame (customer_id, article_id, score) of many customers.

        Returns customer_id, article_id, score (combined), one column per task (``score_<task>``),
        candidate_score (the two-tower score) and rank (1 = best), top ``k`` per customer.
        """
        cust = candidates["customer_id"].to_numpy(dtype=object)
        arts = candidates["article_id"].to_numpy(dtype=object)
        cand_scores = candidates["score"].to_numpy(dtype=np.float64)
        combined, task_scores = self.score_rows(cust, arts, cand_scores, source_matrix(candidates), recent)
        out = pd.DataFrame({"customer_id": cust.astype(str), "article_id": arts.astype(str), "score": combined})
        for task, values in task_scores.items():
            out[f"score_{task}"] = values.astype(np.float64)
        out["candidate_score"] = cand_scores
        out = out.sort_values(["customer_id", "score"], ascending=[True, False], kind="stable")
        out["rank"] = out.groupby("customer_id", sort=False).cumcount() + 1
        if k is not None:
            out = out[out["rank"] <= k]
        return out.reset_index(drop=True)
