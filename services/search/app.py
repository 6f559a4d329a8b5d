"""Search service: text and image queries over the catalogue, with filters, facets and
optional personalisation.

Run: ``python -m uvicorn services.search.app:create_app --factory --port 8003``
(settings from ``HM_SEARCH_*``, see settings.SearchSettings; indexes from ``hmrec index``).

- ``POST /search/text``  JSON :class:`shared.contract.schemas.TextSearchRequest` -> SearchResponse
- ``POST /search/image`` multipart: ``file`` (JPEG/PNG/WebP) + optional form fields ``k``,
  ``filters`` (SearchFilters as JSON), ``customer_id``, ``mode`` (default|embedder|colour)
  -> SearchResponse. The upload is counted as it streams in and refused (413) the moment it
  passes the limit, whatever Content-Length claimed.

Health, metrics, load shedding and hot swap come from ``shared.serving.app``; this module holds
only the routes.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from services.search.engine import PhotosPending, SearchIndex
from services.search.settings import SearchSettings
from services.search.slot import IndexSlot
from services.search.upload import UploadError, configure_pillow, decode_upload
from shared.contract.schemas import (
    MAX_RESULTS_K,
    CustomerId,
    SearchFilters,
    SearchResponse,
    TextSearchRequest,
)
from shared.contract.wire import json_bytes
from shared.serving.app import model_service_app, served
from shared.serving.uploads import read_image_form

router = APIRouter(tags=["search"])

IMAGE_FORM_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "JPEG, PNG or WebP photo"},
                        "k": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS_K, "default": 12},
                        "filters": {"type": "string", "description": "SearchFilters as JSON"},
                        "customer_id": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                        "mode": {"type": "string", "enum": ["default", "embedder", "colour"], "default": "default"},
                    },
                }
            }
        },
    }
}


class ImageSearchOptions(BaseModel):
    """The form fields that come with an uploaded photo (same meaning as for text)."""

    model_config = {"extra": "forbid"}

    k: int = Field(default=12, ge=1, le=MAX_RESULTS_K)
    filters: SearchFilters = Field(default_factory=SearchFilters)
    customer_id: CustomerId | None = None
    mode: Literal["default", "embedder", "colour"] = "default"


async def parse_image_form(request: Request, max_upload_bytes: int) -> tuple[bytes, ImageSearchOptions]:
    form = await read_image_form(request, max_upload_bytes, ("k", "customer_id", "mode", "filters"))
    try:
        options = ImageSearchOptions.model_validate(form.fields)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise HTTPException(422, detail={"message": "invalid image search options", "errors": errors}) from exc
    return form.image, options


async def decode(request: Request, data: bytes) -> Any:
    """Decode an upload; decoding holds up to max_image_pixels of RGB, so only a few run at
    once and the rest wait briefly, then are shed with 503 + Retry-After."""
    settings: SearchSettings = request.app.state.settings
    decodes: asyncio.Semaphore = request.app.state.decodes
    try:
        await asyncio.wait_for(decodes.acquire(), settings.decode_wait_s)
    except TimeoutError:
        raise HTTPException(
            503,
            detail=f"too many photos are being decoded; retry in a second "
            f"(limit {settings.max_concurrent_decodes} at once)",
            headers={"Retry-After": "1"},
        ) from None
    try:
        return await run_in_threadpool(decode_upload, data, settings.max_image_pixels, settings.max_image_side)
    except UploadError as exc:
        raise HTTPException(exc.status, detail=exc.message) from exc
    finally:
        decodes.release()


@router.post("/search/text", response_model=SearchResponse)
def search_text(body: TextSearchRequest, request: Request) -> Response:
    # Plain def: scoring is CPU work, FastAPI runs it in its threadpool. The answer as bytes
    # (a SearchResponse: results and facets written without pydantic objects).
    index: SearchIndex = served(request.app.state.slot, "search index")
    return json_bytes(index.text_search_json(body.query, body.k, body.filters, body.customer_id, body.mode))


@router.post("/search/image", response_model=SearchResponse, openapi_extra=IMAGE_FORM_SCHEMA)
async def search_image(request: Request) -> SearchResponse:
    data, options = await parse_image_form(request, request.app.state.settings.max_upload_bytes)
    index: SearchIndex = served(request.app.state.slot, "search index")
    if not index.has_images:  # before decoding: nothing to match the photo against yet
        raise _unavailable(index.photos_unavailable())
    image = await decode(request, data)
    try:
        return await run_in_threadpool(
            index.image_search,
            image,
            options.k,
            options.filters,
            options.customer_id,
            options.mode,
            hashlib.sha256(data).hexdigest(),
        )
    except LookupError as exc:
        raise _unavailable(exc) from exc


def _unavailable(exc: LookupError) -> HTTPException:
    """503; with Retry-After while photos are being indexed (clients and the gateway then know
    it is temporary: the gateway passes the message on, and its breaker does not count it)."""
    if isinstance(exc, PhotosPending):
        return HTTPException(503, detail=exc.message, headers={"Retry-After": str(exc.retry_after_s)})
    return HTTPException(503, detail=str(exc))


def create_app(settings: SearchSettings | None = None) -> FastAPI:
    settings = settings or SearchSettings()
    configure_pillow(settings.max_image_pixels)
    slot = IndexSlot(settings)

    def describe() -> dict[str, Any]:
        detail: dict[str, Any] = {
            "index_version": slot.version,
            "last_error": slot.last_error,
            "index_dir": str(settings.index_dir),
        }
        if slot.current is not None:
            detail.update(slot.current.describe())
        return detail

    app = model_service_app(
        "search",
        settings,
        [slot],
        describe,
        threads={"torch_threads": settings.torch_threads, "blas": settings.blas_threads},
        title="hmrec search service",
        description="Text (TF-IDF + semantic, hybrid by default) and photo search over the catalogue, "
        "with filters, facets and optional personalisation.",
    )
    app.state.decodes = asyncio.Semaphore(settings.max_concurrent_decodes)
    app.include_router(router)
    return app
