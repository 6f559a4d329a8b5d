"""The public REST API: recommendations, search, and what the web page needs.

Run: ``python -m uvicorn services.gateway.app:create_app --factory --port 8000``
(``hmrec run`` starts it with the other services). The page in ``frontend/`` is served at ``/``.

This module only puts the gateway together: the shape every service shares
(``shared.serving.app.service_app``: health, metrics, load shedding), the state built in the
lifespan (``state.build_state``), the routes (``routes/``), the OpenAPI schema and the page.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from services.gateway import events as events_api
from services.gateway.catalogue import Catalogue
from services.gateway.metrics import GatewayMetrics
from services.gateway.models import GatewaySearchRequest
from services.gateway.routes import catalogue as catalogue_routes
from services.gateway.routes import recommend as recommend_routes
from services.gateway.routes import search as search_routes
from services.gateway.routes import status as status_routes
from services.gateway.routes.health import gateway_readiness
from services.gateway.settings import GatewaySettings
from services.gateway.state import build_state, close_state
from shared.serving.app import service_app
from shared.serving.prometheus import ServiceMetrics

log = logging.getLogger("services.gateway")


def create_app(settings: GatewaySettings | None = None, catalogue: Catalogue | None = None) -> FastAPI:
    """The gateway app. ``catalogue`` may be given ready-made (tests); else it is loaded from
    ``settings.data_dir`` in a worker thread during startup."""
    settings = settings or GatewaySettings()
    shared_metrics = ServiceMetrics("gateway")
    metrics = GatewayMetrics(shared_metrics.registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await build_state(settings, metrics, catalogue)
        app.state.gateway = state
        stop_events = await events_api.start_events(app, settings.redis_url, shared_metrics.registry)
        poller = asyncio.create_task(state.health_loop())
        log.info(
            "gateway ready to serve (dependencies: %s; cache: %s)",
            {n: d["ready"] for n, d in state.dependencies.items()},
            state.cache.state()["backend"],
        )
        try:
            yield
        finally:
            poller.cancel()
            with suppress(asyncio.CancelledError):
                await poller
            await stop_events()
            await close_state(state)

    app = service_app(
        # `app` is looked up when /readyz is called, by then it exists.
        "gateway",
        settings,
        lambda: gateway_readiness(app),
        lifespan,
        metrics=shared_metrics,
        title="H&M recommender gateway",
        version="1.0.0",
        description="Personalised feed (two-tower candidates re-ranked by an MMoE), text and image "
        "search, and the catalogue the web page needs. Degrades instead of failing: "
        "see `source` and `degraded` in each response.",
    )
    for module in (recommend_routes, search_routes, catalogue_routes, status_routes, events_api):
        app.include_router(module.router)
    app.openapi = lambda: openapi_with_search_body(app)  # type: ignore[method-assign]
    if settings.frontend_dir.is_dir():
        app.mount("/", PageFiles(directory=settings.frontend_dir, html=True), name="frontend")
    return app


def openapi_with_search_body(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus GatewaySearchRequest, which /search reads itself (JSON or multipart)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        body = GatewaySearchRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in body.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components["GatewaySearchRequest"] = body
        app.openapi_schema = schema
    return app.openapi_schema


class PageFiles(StaticFiles):
    """The page's own files only: its folder also holds the frontend image's Dockerfile and
    nginx.conf, which are nobody's business."""

    PAGE = frozenset({".", "index.html", "app.js", "style.css"})

    async def get_response(self, path: str, scope: Any) -> Response:
        if path not in self.PAGE:
            raise HTTPException(404, detail="Not Found")
        return await super().get_response(path, scope)
