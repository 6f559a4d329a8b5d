"""Candidate service: ``POST /candidates`` answers a customer's stage-one candidates.

Run: ``python -m uvicorn services.candidate.app:create_app --factory --port 8001``
(settings from ``HM_CANDIDATE_*``, see settings.CandidateSettings). Health, metrics, load
shedding and hot swap come from ``shared.serving.app``; this module holds only the route.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response

from services.candidate.serving import ServingModel
from services.candidate.settings import MODEL_NAME, CandidateSettings
from shared.contract.schemas import CandidateRequest, CandidateResponse
from shared.contract.wire import CandidateColumns, Wire, json_bytes
from shared.serving.app import ModelSlot, model_service_app, served

router = APIRouter(tags=["candidates"])


@router.post("/candidates", response_model=CandidateResponse | CandidateColumns)
async def candidates(body: CandidateRequest, request: Request, wire: Wire = "objects") -> Response:
    """A customer's stage-one candidates; ``wire=columns``: the same list as columns
    (shared.contract.wire.CandidateColumns, what the gateway asks for)."""
    # On the event loop, not in the threadpool: stage one is ~1 ms of NumPy on small arrays
    # (GIL held), and the thread handoff cost ~15 % of the process's CPU (as the ranker's /rank).
    model: ServingModel = served(request.app.state.slot, "two-tower model")
    # The body as bytes (written without pydantic objects: see answer_json).
    return json_bytes(model.answer_json(body.customer_id, body.k, body.recent_article_ids, wire))


def create_app(settings: CandidateSettings | None = None) -> FastAPI:
    settings = settings or CandidateSettings()

    def loader(path: Path) -> ServingModel:
        # Stage-one sizes as the model was trained and evaluated with (its metadata), unless
        # the operator overrides the not-sold window.
        return ServingModel.load(path, not_sold_weeks=settings.not_sold_weeks)

    slot: ModelSlot[ServingModel] = ModelSlot(MODEL_NAME, settings.models_dir, loader, settings.model_version)

    def describe() -> dict[str, Any]:
        return {"model_version": slot.version, "last_error": slot.last_error}

    app = model_service_app(
        "candidate",
        settings,
        [slot],
        describe,
        threads={"blas": settings.blas_threads},
        title="hmrec candidate service",
        description="Stage one: a customer's candidates from the two-tower, repurchase, co-purchase, "
        "other colours, trending and best sellers.",
    )
    app.include_router(router)
    return app
