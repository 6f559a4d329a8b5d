"""``POST /search``: text (JSON body) or image (multipart) search, proxied to the search service."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.gateway import search_proxy
from services.gateway.models import SearchResult
from services.gateway.routes.deps import StateDep

router = APIRouter(tags=["search"])


@router.post("/search", response_model=SearchResult, openapi_extra=search_proxy.OPENAPI_BODY)
async def search(state: StateDep, request: Request) -> Response:
    """Text search (JSON body) or image search (multipart, image in ``file``). 503 when the
    search service is unavailable; 4xx for a bad query or upload."""
    return Response(await search_proxy.search(state, request), media_type="application/json")
