"""Ranker service: ``POST /rank`` re-orders a customer's candidates with the MMoE.

Run: ``python -m uvicorn services.ranker.app:create_app --factory --port 8002``
(settings from ``HM_RANKER_*``, see settings.RankerSettings). Health, metrics, load shedding
and hot swap come from ``shared.serving.app``; this module holds only the route.

Unknown customers and articles are scored with the feature store's documented defaults
(see features.py), never an error. Serving uses the NumPy export of the model, so this
process never imports TensorFlow.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response

from services.ranker.serving import LoadedRanker
from services.ranker.settings import MODEL_NAME, RankerSettings
from shared.contract.schemas import RankRequest, RankResponse
from shared.contract.wire import RankColumns, RankColumnsRequest, Wire, body_openapi, json_body, json_bytes
from shared.serving.app import ModelSlot, model_service_app, served

router = APIRouter(tags=["rank"])


# The body validated in one pass from its bytes (see shared.contract.wire.json_body), in either wire.
_parse_objects = json_body(RankRequest)
_parse_columns = json_body(RankColumnsRequest)


@router.post(
    "/rank", response_model=RankResponse | RankColumns, openapi_extra=body_openapi(RankRequest, RankColumnsRequest)
)
async def rank(request: Request, wire: Wire = "objects") -> Response:
    """Re-order a customer's candidates; ``wire=columns``: candidates in and ranking out as
    columns (shared.contract.wire.RankColumnsRequest / RankColumns, what the gateway sends).

    Scored on the event loop, not in FastAPI's threadpool: a request's scoring is ~1-2 ms of
    NumPy on small arrays, which holds the GIL for most of it, so a worker thread bought no
    parallelism and its handoff (anyio's queue, two thread switches) cost ~15 % of this
    process's CPU per request (py-spy, docs/gateway.md). Health routes wait one request at most."""
    if wire == "columns":
        columns = await _parse_columns(request)
        model = _model(request)
        scores = np.asarray(columns.scores, dtype=np.float64)
        _refuse_non_finite([columns.article_ids[i] for i in np.flatnonzero(~np.isfinite(scores))])
        return json_bytes(model.answer_columns(columns))
    body = await _parse_objects(request)
    model = _model(request)
    _refuse_non_finite([c.article_id for c in body.candidates if not math.isfinite(c.score)])
    return json_bytes(model.answer_json(body.customer_id, body.candidates, body.k, body.recent_article_ids))


def _model(request: Request) -> LoadedRanker:
    model: LoadedRanker = served(request.app.state.slot, "ranker model")
    return model


def _refuse_non_finite(bad: list[str]) -> None:
    if bad:
        raise HTTPException(
            status_code=422,
            detail=f"candidate scores must be finite numbers; got {len(bad)} non-finite, e.g. article {bad[0]}",
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
