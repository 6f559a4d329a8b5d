"""``GET /status``: which parts of the page are ready, warming up, or unavailable."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from services.gateway.models import StatusResponse
from services.gateway.routes.deps import StateDep
from services.gateway.warming import read_record, status

router = APIRouter(tags=["catalogue"])


@router.get("/status", response_model=StatusResponse)
async def page_status(state: StateDep) -> dict[str, Any]:
    """Per part of the page (feed, text search, image search): `ready`, `warming` (with a
    message such as "indexing photos, 40 %") or `unavailable`; `background` lists the
    full-quality steps of a running `hmrec run`. The page polls it while anything warms up."""
    record = await asyncio.to_thread(read_record, state.settings.output_dir)
    return status(state.dependencies, record)
