"""Candidate service: ``POST /candidates`` answers the nearest articles of a customer's query vector.

Run: ``python -m uvicorn services.candidate.app:create_app --factory --port 8001``
(settings from ``HM_CANDIDATE_*``, see settings.CandidateSettings).
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Response

from services.candidate.serving import ServingModel
from services.candidate.settings import MODEL_NAME, CandidateSettings
from shared.schemas import CandidateRequest, CandidateResponse
from shared.service import (
    ModelSlot,
    configure_logging,
    health_router,
    limit_concurrency,
    serving_slots,
)
from shared.wire import json_bytes


def limit_blas_threads(n: int) -> None:
    """Cap numpy's BLAS pool for this process (see CandidateSettings.blas_threads)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")


def create_app(settings: CandidateSettings | None = None) -> FastAPI:
    settings = settings or CandidateSettings()
    configure_logging(settings.log_level)

    def loader(path: Path) -> ServingModel:
        # Stage-one sizes as the model was trained and evaluated with (its metadata), unless
        # the operator overrides the not-sold window.
        return ServingModel.load(path, not_sold_weeks=settings.not_sold_weeks)

    slot: ModelSlot[ServingModel] = ModelSlot(
        name=MODEL_NAME, models_dir=settings.models_dir, loader=loader, pinned_version=settings.model_version,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_blas_threads(settings.blas_threads)
        async with serving_slots([slot], settings.poll_interval_s):
            yield

    app = FastAPI(
        title="hmrec candidate service",
        description="Stage one: a customer's candidates from the two-tower, repurchase, co-purchase, other colours, trending and best sellers.",
        lifespan=lifespan,
    )
    app.state.slot = slot
    app.state.settings = settings

    def readiness() -> tuple[bool, dict[str, Any]]:
        return slot.ready, {"model_version": slot.version, "last_error": slot.last_error}

    app.include_router(health_router("candidate", readiness))
    limit_concurrency(app, "candidate")  # 503 + Retry-After past HM_CANDIDATE_MAX_IN_FLIGHT (32)

    @app.post("/candidates", response_model=CandidateResponse)
    def candidates(request: CandidateRequest) -> Response:
        # Plain def: the model call blocks, FastAPI runs it in its threadpool.
        served = slot.current  # one read: the whole request uses one model version
        if served is None:
            raise HTTPException(status_code=503, detail=f"no two-tower model loaded yet: {slot.last_error}")
        # The body as bytes (a CandidateResponse, written without pydantic objects: see answer_json).
        return json_bytes(served.answer_json(request.customer_id, request.k, request.recent_article_ids))

    return app
