"""/search: one public route for text (JSON) and image (multipart) queries.

Both are validated here (the same limits the search service applies, so bad input costs no
upstream call), cached by index version + every parameter (an image by its SHA-256), passed
to the search service, and enriched with article cards. Text and image queries go through
separate circuit breakers: hostile photos that make image search fail cannot take text
search down with them. Search has no fallback: when it
is unavailable the route answers 503 and every other route keeps working.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import aiohttp
from fastapi import HTTPException, Request
from pydantic import ValidationError

from services.gateway.cache import cache_key, dumps, mark_cached
from services.gateway.clients import DependencyRejected, DependencyUnavailable
from services.gateway.models import GatewaySearchRequest
from services.gateway.state import GatewayState
from shared.contract.schemas import MAX_RESULTS_K
from shared.serving.uploads import read_bounded, read_image_form

JSON_BODY_LIMIT = 64 * 1024
# The search service's 503 while its photos are being embedded (a text-only index is served):
# "indexing photos, 40 % (4800 of 12000); ..." or "photos are not indexed yet ...", with
# Retry-After. The client sees a shed ("overloaded, shedding load: <detail>"); the detail is
# passed to the caller as it is, not as "search is unavailable".
PHOTOS_PENDING_PREFIXES = ("indexing photos", "photos are not indexed yet")
SHED_PREFIX = "overloaded, shedding load: "

# Documents both bodies in OpenAPI (the route reads the request itself).
OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/GatewaySearchRequest"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "JPEG, PNG or WebP photo"},
                        "k": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS_K, "default": 12},
                        "offset": {"type": "integer", "minimum": 0, "default": 0},
                        "filters": {"type": "string", "description": "SearchFilters as JSON"},
                        "customer_id": {"type": "string"},
                    },
                }
            },
        },
    }
}


def unprocessable(message: str, errors: Any = None) -> HTTPException:
    return HTTPException(422, detail=message if errors is None else {"message": message, "errors": errors})


def _error_messages(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]


async def parse_search(
    request: Request, max_upload_bytes: int
) -> tuple[str, GatewaySearchRequest, dict[str, Any] | None]:
    """('text'|'image', validated options, image {bytes, filename, content_type} or None)."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("application/json"):
        body = await read_bounded(request, JSON_BODY_LIMIT)
        try:
            return "text", GatewaySearchRequest.model_validate_json(body), None
        except ValidationError as exc:
            raise unprocessable("invalid search request", _error_messages(exc)) from exc
    if content_type.startswith("multipart/form-data"):
        form = await read_image_form(request, max_upload_bytes, ("k", "offset", "customer_id", "filters"))
        # The text field is unused for images; the placeholder satisfies the shared model.
        try:
            options = GatewaySearchRequest.model_validate({"query": "image", **form.fields})
        except ValidationError as exc:
            raise unprocessable("invalid image search options", _error_messages(exc)) from exc
        return "image", options, {"bytes": form.image, "filename": form.filename, "content_type": form.content_type}
    raise HTTPException(415, detail="send application/json (text query) or multipart/form-data (image in 'file')")


def photos_pending(exc: DependencyUnavailable) -> str | None:
    """The search service's own message when it refused an image query because its photos are
    still being indexed, else None."""
    detail = exc.reason[len(SHED_PREFIX) :] if exc.reason.startswith(SHED_PREFIX) else ""
    return detail if detail.startswith(PHOTOS_PENDING_PREFIXES) else None


def search_key(state: GatewayState, kind: str, options: GatewaySearchRequest, image_sha: str | None) -> str:
    versions = {"search": state.versions.get("search"), "catalogue": state.catalogue.version}
    if options.customer_id:  # personalised: blended with the two-tower affinity
        versions["candidate"] = state.versions.get("candidate")
    params = options.model_dump(exclude_none=True)
    if kind == "image":
        params.pop("query", None)
        params.pop("mode", None)
        params["image_sha256"] = image_sha
    return cache_key(state.settings.cache_prefix, f"search-{kind}", versions, params)


async def search(state: GatewayState, request: Request) -> bytes:
    """The response body as JSON bytes (cached bytes are served as they are)."""
    kind, options, image = await parse_search(request, state.settings.max_upload_bytes)
    image_sha = hashlib.sha256(image["bytes"]).hexdigest() if image else None
    hit = await state.cache.get_raw(search_key(state, kind, options, image_sha))
    if hit is not None:
        return mark_cached(hit)

    # Always the service's maximum: `total` is then the real number of results (up to 100),
    # so the page can offer every page; ranking 100 instead of 12 costs the service next to
    # nothing, and cards are built for the requested page only.
    upstream_k = MAX_RESULTS_K
    filters = options.filters.model_dump(exclude_none=True)
    client = state.clients["search"]
    try:
        if kind == "text":
            payload = {"query": options.query, "k": upstream_k, "filters": filters, "mode": options.mode}
            if options.customer_id:
                payload["customer_id"] = options.customer_id
            answer = await client.post_json("/search/text", payload, operation="text")
        else:
            assert image is not None
            form = aiohttp.FormData()
            form.add_field("file", image["bytes"], filename=image["filename"], content_type=image["content_type"])
            form.add_field("k", str(upstream_k))
            form.add_field("filters", json.dumps(filters))
            if options.customer_id:
                form.add_field("customer_id", options.customer_id)
            answer = await client.post_form(
                "/search/image", form, timeout_s=state.settings.search_image_timeout_s, operation="image"
            )
    except DependencyRejected as exc:
        raise HTTPException(exc.status, detail=exc.detail) from exc
    except DependencyUnavailable as exc:
        state.metrics.fallbacks.labels("/search", "search", "503").inc()
        state.log_fallback("search", exc)
        # Always with Retry-After: the caller is told when to come back (a shed, not a crash).
        retry_after = max(1, math.ceil(exc.retry_after_s or 1))
        pending = photos_pending(exc) if kind == "image" else None
        raise HTTPException(
            503,
            detail=pending or f"search is unavailable right now ({exc.reason}); recommendations still work",
            headers={"Retry-After": str(retry_after)},
        ) from exc

    try:
        results = answer["results"]
        visible = [(r["article_id"], r["score"]) for r in results if r["article_id"] in state.catalogue]
        cards = [state.catalogue.card(a, score) for a, score in visible[options.offset : options.offset + options.k]]
    except (KeyError, TypeError) as exc:
        raise HTTPException(502, detail=f"search answered in an unexpected shape: {exc!r}") from exc
    version = state.note_version("search", answer.get("index_version"))
    response = {
        "kind": kind,
        "source": "search",
        "cached": False,
        "degraded": [],
        "mode": answer.get("mode", "image" if kind == "image" else options.mode),
        "personalised": bool(answer.get("personalised", False)),
        "index_version": version,
        "k": options.k,
        "offset": options.offset,
        "total": len(visible),
        "items": cards,
        "facets": answer.get("facets") or {},
    }
    body = dumps(response)
    await state.cache.set_raw(search_key(state, kind, options, image_sha), body)
    return body
