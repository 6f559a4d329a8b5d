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
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response

from services.ranker.serving import LoadedRanker
from services.ranker.settings import MODEL_NAME, RankerSettings
from shared.schemas import RankRequest, RankResponse
from shared.service import ModelSlot, model_service_app, served
from shared.wire import body_openapi, json_body, json_bytes

router = APIRouter(tags=["rank"])


# The body validated in one pass from its bytes (see shared.wire.json_body).
RankBody = Annotated[RankRequest, Depends(json_body(RankRequest))]


@router.post("/rank", response_model=RankResponse, openapi_extra=body_openapi(RankRequest))
def rank(body: RankBody, request: Request) -> Response:
    # Plain def: scoring is CPU work, FastAPI runs it in its threadpool.
    model: LoadedRanker = served(request.app.state.slot, "ranker model")
    bad = [c.article_id for c in body.candidates if not math.isfinite(c.score)]
    if bad:
        raise HTTPException(
            status_code=422,
            detail=f"candidate scores must be finite numbers; got {len(bad)} non-finite, e.g. article {bad[0]}",
        )
    return json_bytes(model.answer_json(body.customer_id, body.candidates, body.k, body.recent_article_ids))


def create_app(settings: RankerSettings | None = None) -> FastAPI:
    settings = settings or RankerSettings()

    def loader(path: Path) -> LoadedRanker:
        return LoadedRanker.load(path, settings.score_weights)

    slot: ModelSlot[LoadedRanker] = ModelSlot(MODEL_NAME, settings.models_dir, loader, settings.model_version)

    def describe() -> dict[str, Any]:
        detail: dict[str, Any] = {"model_version": slot.version, "last_error": slot.last_error}
        model = slot.current
        if model is not None:
            detail.update(
                ordering=model.ordering,
                tasks=model.task_names,
                score_weights=model.score_weights,
                features_cutoff=model.store.cutoff.isoformat(),
            )
        return detail

    app = model_service_app(
        "ranker",
        settings,
        [slot],
        describe,
        threads={"blas": settings.blas_threads},
        title="hmrec ranker service",
        description="MMoE re-ranking of a customer's candidates (purchase, online purchase, revenue tasks).",
    )
    app.include_router(router)
    return app
