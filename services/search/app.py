"""Search service: text and image queries over the catalogue, with filters, facets and
optional personalisation.

Run: ``python -m uvicorn services.search.app:create_app --factory --port 8003``
(settings from ``HM_SEARCH_*``, see settings.SearchSettings; indexes from ``hmrec index``).

- ``POST /search/text``  JSON :class:`shared.schemas.TextSearchRequest` -> SearchResponse
- ``POST /search/image`` multipart: ``file`` (JPEG/PNG/WebP) + optional form fields ``k``,
  ``filters`` (SearchFilters as JSON), ``customer_id``, ``mode`` (default|embedder|colour)
  -> SearchResponse. The upload is counted as it streams in and refused (413) the moment it
  passes the limit, whatever Content-Length claimed.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from services.search.engine import SearchIndex
from services.search.index import read_manifest
from services.search.settings import SearchSettings
from services.search.upload import UploadError, configure_pillow, decode_upload
from shared.schemas import (
    MAX_RESULTS_K,
    CustomerId,
    SearchFilters,
    SearchResponse,
    TextSearchRequest,
)
from shared.service import configure_logging, health_router, limit_concurrency, serving_slots
from shared.uploads import read_image_form
from shared.wire import json_bytes

log = logging.getLogger(__name__)


class ImageSearchOptions(BaseModel):
    """The form fields that come with an uploaded photo (same meaning as for text)."""

    model_config = {"extra": "forbid"}

    k: int = Field(12, ge=1, le=MAX_RESULTS_K)
    filters: SearchFilters = Field(default_factory=SearchFilters)
    customer_id: CustomerId | None = None
    mode: Literal["default", "embedder", "colour"] = "default"

class IndexSlot:
    """The served index; ``reload`` loads a new manifest version beside it and swaps in one
    assignment (a failed load keeps the old one serving). Duck-types shared.service.ModelSlot
    for ``serving_slots``: the index is a folder of files, not a versioned model dir."""

    def __init__(self, settings: SearchSettings) -> None:
        self.settings = settings
        self.current: SearchIndex | None = None
        self.version: str | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self.current is not None

    def reload(self, force: bool = False) -> bool:
        with self._lock:
            try:
                wanted = str(read_manifest(self.settings.index_dir)["version"])
            except (OSError, ValueError, KeyError) as exc:
                self.last_error = str(exc)
                return False
            if wanted == self.version and not force:
                return False
            old = self.current
            try:
                index = SearchIndex.load(
                    self.settings.index_dir, self.settings,
                    encoder=old.encoder if old else None, embedder=old.embedder if old else None)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the old index serving
                self.last_error = f"loading search index {wanted} failed: {exc!r}"
                log.exception("index load failed; keeping version %s", self.version)
                return False
            self.current, self.version, self.last_error = index, index.version, None
            log.info("now serving search index %s", index.version)
            return True

async def parse_image_form(request: Request, max_upload_bytes: int) -> tuple[bytes, ImageSearchOptions]:
    form = await read_image_form(request, max_upload_bytes, ("k", "customer_id", "mode", "filters"))
    try:
        options = ImageSearchOptions.model_validate(form.fields)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise HTTPException(422, detail={"message": "invalid image search options", "errors": errors}) from exc
    return form.image, options


def create_app(settings: SearchSettings | None = None) -> FastAPI:
    settings = settings or SearchSettings()
    configure_logging(settings.log_level)
    configure_pillow(settings.max_image_pixels)
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    slot = IndexSlot(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with serving_slots([slot], settings.poll_interval_s):  # type: ignore[list-item]
            yield

    app = FastAPI(
        title="hmrec search service",
        description="Text (TF-IDF + semantic, hybrid by default) and photo search over the catalogue, "
                    "with filters, facets and optional personalisation.",
        lifespan=lifespan,
    )
    app.state.slot = slot
    app.state.settings = settings
    limit_concurrency(app, "search", settings.max_in_flight)
    # Decoding holds up to max_image_pixels of RGB: only a few at once, the rest wait briefly.
    decodes = asyncio.Semaphore(settings.max_concurrent_decodes)

    async def decode(data: bytes) -> Any:
        try:
            await asyncio.wait_for(decodes.acquire(), settings.decode_wait_s)
        except TimeoutError:
            raise HTTPException(503, detail=f"too many photos are being decoded; retry in a second "
                                            f"(limit {settings.max_concurrent_decodes} at once)",
                                headers={"Retry-After": "1"}) from None
        try:
            return await run_in_threadpool(decode_upload, data, settings.max_image_pixels, settings.max_image_side)
        except UploadError as exc:
            raise HTTPException(exc.status, detail=exc.message) from exc
        finally:
            decodes.release()

    def readiness() -> tuple[bool, dict[str, Any]]:
        detail: dict[str, Any] = {"index_version": slot.version, "last_error": slot.last_error,
                                  "index_dir": str(Path(settings.index_dir))}
        if slot.current is not None:
            detail.update(slot.current.describe())
        return slot.ready, detail

    app.include_router(health_router("search", readiness))

    def served() -> SearchIndex:
        index = slot.current  # one read: the whole request uses one index version
        if index is None:
            raise HTTPException(503, detail=f"no search index loaded yet: {slot.last_error}")
        return index

    @app.post("/search/text", response_model=SearchResponse)
    def search_text(request: TextSearchRequest) -> Response:
        # Plain def: scoring is CPU work, FastAPI runs it in its threadpool. The answer as bytes
        # (a SearchResponse: results and facets written without pydantic objects).
        return json_bytes(served().text_search_json(request.query, request.k, request.filters, request.customer_id,
                                                    request.mode))

    @app.post("/search/image", response_model=SearchResponse, openapi_extra={"requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary", "description": "JPEG, PNG or WebP photo"},
                "k": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS_K, "default": 12},
                "filters": {"type": "string", "description": "SearchFilters as JSON"},
                "customer_id": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "mode": {"type": "string", "enum": ["default", "embedder", "colour"], "default": "default"},
            }}}}}})
    async def search_image(request: Request) -> SearchResponse:
        data, options = await parse_image_form(request, settings.max_upload_bytes)
        index = served()
        image = await decode(data)
        try:
            return await run_in_threadpool(
                index.image_search, image, options.k, options.filters, options.customer_id, options.mode,
                hashlib.sha256(data).hexdigest())
        except LookupError as exc:
            raise HTTPException(503, detail=str(exc)) from exc

    return app
