"""Ranker service: ``POST /rank`` re-orders a customer's candidates with the MMoE.

Run: ``python -m uvicorn services.ranker.app:create_app --factory --port 8002``
(settings from ``HM_RANKER_*``, see settings.RankerSettings). Health, metrics, load shedding
and hot swap come from ``shared.service``; this module holds only the route.

Unknown customers and articles are scored with the feature store's documented defaults
(see features.py), never an error. Serving uses the NumPy export of the model, so this
process never imports TensorFlow.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request

from services.ranker.serving import LoadedRanker
from services.ranker.settings import MODEL_NAME, RankerSettings
from shared.candidates import source_matrix_from_dicts
from shared.schemas import RankedArticle, RankRequest, RankResponse
from shared.service import ModelSlot, model_service_app, served

router = APIRouter(tags=["rank"])


@router.post("/rank", response_model=RankResponse)
def rank(body: RankRequest, request: Request) -> RankResponse:
    # Plain def: scoring is CPU work, FastAPI runs it in its threadpool.
    model: LoadedRanker = served(request.app.state.slot, "ranker model")
    bad = [c.article_id for c in body.candidates if not math.isfinite(c.score)]
    if bad:
        raise HTTPException(status_code=422, detail=f"candidate scores must be finite numbers; "
                                                    f"got {len(bad)} non-finite, e.g. article {bad[0]}")
    ranked = model.rank(body.customer_id, [c.article_id for c in body.candidates],
                        [c.score for c in body.candidates], body.k,
                        source_matrix_from_dicts(c.sources for c in body.candidates), body.recent_article_ids)
    tasks = list(ranked.task_scores)
    return RankResponse(
        model_version=model.version,
        ordering=model.ordering,
        ranked=[RankedArticle(article_id=a, score=float(ranked.scores[i]),
                              task_scores={t: float(ranked.task_scores[t][i]) for t in tasks})
                for i, a in enumerate(ranked.article_ids)],
    )


def create_app(settings: RankerSettings | None = None) -> FastAPI:
    settings = settings or RankerSettings()

    def loader(path: Path) -> LoadedRanker:
        return LoadedRanker.load(path, settings.score_weights)

    slot: ModelSlot[LoadedRanker] = ModelSlot(MODEL_NAME, settings.models_dir, loader, settings.model_version)

    def describe() -> dict[str, Any]:
        detail: dict[str, Any] = {"model_version": slot.version, "last_error": slot.last_error}
        model = slot.current
        if model is not None:
            detail.update(ordering=model.ordering, tasks=model.task_names, score_weights=model.score_weights,
                          features_cutoff=model.store.cutoff.isoformat())
        return detail

    app = model_service_app(
        "ranker", settings, [slot], describe, threads={"blas": settings.blas_threads},
        title="hmrec ranker service",
        description="MMoE re-ranking of a customer's candidates (purchase, online purchase, revenue tasks).",
    )
    app.include_router(router)
    return app
