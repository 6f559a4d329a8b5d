"""Ranker service: ``POST /rank`` re-orders a customer's candidates with the MMoE.

Run: ``python -m uvicorn services.ranker.app:create_app --factory --port 8002``
(settings from ``HM_RANKER_*``, see settings.RankerSettings).

Unknown customers and articles are scored with the feature store's documented defaults
(see features.py), never an error. Serving uses the NumPy export of the model, so this
process never imports TensorFlow.
"""
from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Response

from services.ranker.serving import LoadedRanker, limit_blas_threads
from services.ranker.settings import MODEL_NAME, RankerSettings
from shared.schemas import RankRequest, RankResponse
from shared.service import (
    ModelSlot,
    configure_logging,
    health_router,
    limit_concurrency,
    serving_slots,
)
from shared.wire import body_openapi, json_body, json_bytes

# The body validated in one pass from its bytes (see shared.wire.json_body).
RankBody = Annotated[RankRequest, Depends(json_body(RankRequest))]


def create_app(settings: RankerSettings | None = None) -> FastAPI:
    settings = settings or RankerSettings()
    configure_logging(settings.log_level)
    limit_blas_threads(settings.blas_threads)

    def loader(path: Path) -> LoadedRanker:
        return LoadedRanker.load(path, settings.score_weights)

    slot: ModelSlot[LoadedRanker] = ModelSlot(
        name=MODEL_NAME, models_dir=settings.models_dir, loader=loader, pinned_version=settings.model_version,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with serving_slots([slot], settings.poll_interval_s):
            yield

    app = FastAPI(
        title="hmrec ranker service",
        description="MMoE re-ranking of a customer's candidates (purchase, online purchase, revenue tasks).",
        lifespan=lifespan,
    )
    app.state.slot = slot
    app.state.settings = settings

    def readiness() -> tuple[bool, dict[str, Any]]:
        served = slot.current
        detail: dict[str, Any] = {"model_version": slot.version, "last_error": slot.last_error}
        if served is not None:
            detail.update(ordering=served.ordering, tasks=served.task_names, score_weights=served.score_weights,
                          features_cutoff=served.store.cutoff.isoformat())
        return slot.ready, detail

    app.include_router(health_router("ranker", readiness))
    limit_concurrency(app, "ranker")  # 503 + Retry-After past HM_RANKER_MAX_IN_FLIGHT (32)

    @app.post("/rank", response_model=RankResponse, openapi_extra=body_openapi(RankRequest))
    def rank(request: RankBody) -> Response:
        # Plain def: scoring is CPU work, FastAPI runs it in its threadpool.
        served = slot.current  # one read: the whole request uses one model version
        if served is None:
            raise HTTPException(status_code=503, detail=f"no ranker model loaded yet: {slot.last_error}")
        bad = [c.article_id for c in request.candidates if not math.isfinite(c.score)]
        if bad:
            raise HTTPException(status_code=422, detail=f"candidate scores must be finite numbers; "
                                                        f"got {len(bad)} non-finite, e.g. article {bad[0]}")
        return json_bytes(served.answer_json(request.customer_id, request.candidates, request.k))

    return app
