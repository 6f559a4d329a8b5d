"""The public REST API: recommendations, search, and what the web page needs.

Run: ``python -m uvicorn services.gateway.app:create_app --factory --port 8000``
(``hmrec run`` starts it with the other services). The page in ``frontend/`` is served at ``/``.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.gateway import events as events_api
from services.gateway import recommend as recommend_flow
from services.gateway import search_proxy
from services.gateway.breaker import CircuitBreaker
from services.gateway.cache import ResultCache
from services.gateway.catalogue import Catalogue, load_catalogue
from services.gateway.clients import ServiceClient, make_session
from services.gateway.metrics import GatewayMetrics, MetricsMiddleware
from services.gateway.models import (
    RECOMMEND_PARAMETERS,
    ArticleDetail,
    CustomerSummary,
    FacetsResponse,
    GatewaySearchRequest,
    RecommendResponse,
    SearchResult,
    parse_recommend_query,
)
from services.gateway.settings import GatewaySettings
from services.gateway.state import DEPENDENCIES, GatewayState
from shared.service import configure_logging, health_router, limit_concurrency

log = logging.getLogger("services.gateway")

ARTICLE_ID_PATH = r"^[0-9]{1,10}$"
IMAGE_ID_PATH = r"^[0-9]{10}$"


def _timeouts(settings: GatewaySettings) -> dict[str, float]:
    return {"candidate": settings.candidate_timeout_s, "ranker": settings.ranker_timeout_s,
            "search": settings.search_timeout_s}


def _urls(settings: GatewaySettings) -> dict[str, str]:
    return {"candidate": settings.candidate_url, "ranker": settings.ranker_url, "search": settings.search_url}


# Dependencies and cheap in-memory routes are `async def`: a plain `def` would cost a
# threadpool hop per call, which dominated a cached /recommend (profiled: ~2 ms of 2.4 ms).
async def get_state(request: Request) -> GatewayState:
    return request.app.state.gateway


StateDep = Annotated[GatewayState, Depends(get_state)]


def create_app(settings: GatewaySettings | None = None, catalogue: Catalogue | None = None) -> FastAPI:
    """The gateway app. ``catalogue`` may be given ready-made (tests); else it is loaded from
    ``settings.data_dir`` in a worker thread during startup."""
    settings = settings or GatewaySettings()
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        cat: Catalogue = catalogue if catalogue is not None else await asyncio.to_thread(
            load_catalogue, settings.data_dir, settings.output_dir / "data",
            settings.popular_weeks, settings.popular_per_band)
        session = make_session()
        clients = {
            name: ServiceClient(
                name, _urls(settings)[name], session,
                CircuitBreaker(name, settings.breaker_failure_threshold, settings.breaker_reset_s),
                _timeouts(settings)[name], settings.connect_timeout_s, metrics.observe_upstream)
            for name in DEPENDENCIES
        }
        cache = ResultCache(
            settings.redis_url, settings.cache_ttl_s, settings.redis_socket_timeout_s,
            settings.redis_retry_interval_s, settings.local_cache_max_entries, metrics.cache_event)
        state = GatewayState(settings, cat, cache, clients, metrics, session)
        await state.refresh_health()
        app.state.gateway = state
        stop_events = await events_api.start_events(app, settings.redis_url, metrics.registry)
        poller = asyncio.create_task(state.health_loop())
        log.info("gateway ready to serve (dependencies: %s; cache: %s)",
                 {n: d["ready"] for n, d in state.dependencies.items()}, cache.state()["backend"])
        try:
            yield
        finally:
            poller.cancel()
            with suppress(asyncio.CancelledError):
                await poller
            await stop_events()
            await session.close()
            await cache.close()

    app = FastAPI(
        title="H&M recommender gateway",
        version="1.0.0",
        description="Personalised feed (two-tower candidates re-ranked by an MMoE), text and image "
                    "search, and the catalogue the web page needs. Degrades instead of failing: "
                    "see `source` and `degraded` in each response.",
        lifespan=lifespan,
    )
    # Overload sheds with 503 + Retry-After (HM_GATEWAY_MAX_IN_FLIGHT); metrics, added after
    # it (so outside it), count the sheds.
    limit_concurrency(app, "gateway", default=64)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    def readiness() -> tuple[bool, dict[str, Any]]:
        ready, detail = app.state.gateway.readiness()
        return ready, detail if settings.readyz_details else public_readiness(detail)

    app.include_router(health_router("gateway", readiness))
    app.include_router(events_api.router)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/recommend", response_model=RecommendResponse, tags=["recommend"],
             openapi_extra={"parameters": RECOMMEND_PARAMETERS},
             responses={422: {"description": "Invalid customer id, k, offset or filter"}})
    async def recommend(state: StateDep, request: Request) -> Response:
        """The customer's feed, filtered by catalogue attributes (each repeatable: any of).

        Query parameters are validated by ``RecommendQuery`` directly: FastAPI's per-parameter
        machinery cost ~60% of a cached request's CPU (profiled), for the same checks."""
        query = parse_recommend_query(request)
        if query.offset > state.settings.max_offset:
            raise HTTPException(422, detail=f"offset must be <= {state.settings.max_offset}")
        session = await events_api.session_view(request, query.customer_id, query.session_id)
        body = await recommend_flow.recommend(state, query.served_customer_id(), query.k, query.offset,
                                              query.filters(), session)
        return Response(body, media_type="application/json")

    @app.post("/search", response_model=SearchResult, tags=["search"], openapi_extra=search_proxy.OPENAPI_BODY)
    async def search(state: StateDep, request: Request) -> Response:
        """Text search (JSON body) or image search (multipart, image in ``file``). 503 when the
        search service is unavailable; 4xx for a bad query or upload."""
        return Response(await search_proxy.search(state, request), media_type="application/json")

    def openapi() -> dict[str, Any]:
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

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/customers", response_model=list[CustomerSummary], tags=["catalogue"])
    async def customers(
        state: StateDep,
        prefix: Annotated[str, Query(pattern=r"^[0-9a-fA-F]{0,64}$", description="Start of the id (hex)")] = "",
        limit: Annotated[int, Query(ge=1, le=50)] = 10,
    ) -> list[dict[str, Any]]:
        """Customers whose id starts with ``prefix``; without a prefix, a sample of active ones."""
        if not prefix:
            return state.catalogue.sample_customers(limit)
        return state.catalogue.customers_with_prefix(prefix.lower(), limit)

    @app.get("/articles/{article_id}", response_model=ArticleDetail, tags=["catalogue"])
    async def article(state: StateDep, article_id: Annotated[str, Path(pattern=ARTICLE_ID_PATH)]) -> dict[str, Any]:
        detail = state.catalogue.detail(article_id.zfill(10))
        if detail is None:
            raise HTTPException(404, detail=f"no article {article_id.zfill(10)}")
        return detail

    @app.get("/articles/{article_id}/image", response_class=FileResponse, tags=["catalogue"],
             responses={200: {"content": {"image/jpeg": {}}}})
    def article_image(
        state: StateDep,
        article_id: Annotated[str, Path(pattern=IMAGE_ID_PATH, description="Exactly 10 digits")],
    ) -> FileResponse:
        """The article's photo. The path is built from the validated id, never taken from the request."""
        path = state.catalogue.image_path(article_id)
        if path is None or not path.is_file():
            raise HTTPException(404, detail=f"no photo for article {article_id}")
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/facets", response_model=FacetsResponse, tags=["catalogue"])
    async def facets(state: StateDep) -> dict[str, Any]:
        """Filterable attribute values with their catalogue counts, and the price range."""
        return {"facets": state.catalogue.facets, "price": state.catalogue.price_range()}

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse({"detail": "internal error; see the gateway log"}, status_code=500)

    if settings.frontend_dir.is_dir():
        app.mount("/", PageFiles(directory=settings.frontend_dir, html=True), name="frontend")
    return app


def public_readiness(detail: dict[str, Any]) -> dict[str, Any]:
    """/readyz for anonymous callers: states and versions, no internal URLs or error text
    (``HM_GATEWAY_READYZ_DETAILS=true`` shows everything)."""
    deps = {name: {k: v for k, v in dep.items() if k not in ("url", "detail")}
            for name, dep in detail.get("dependencies", {}).items()}
    cache = dict(detail.get("cache", {}))
    if cache.get("error"):
        cache["error"] = str(cache["error"]).split(":", 1)[0]  # the exception's class only
    return {**detail, "dependencies": deps, "cache": cache}


class PageFiles(StaticFiles):
    """The page's own files only: its folder also holds the frontend image's Dockerfile and
    nginx.conf, which are nobody's business."""

    PAGE = frozenset({".", "index.html", "app.js", "style.css"})

    async def get_response(self, path: str, scope: Any) -> Response:
        if path not in self.PAGE:
            raise HTTPException(404, detail="Not Found")
        return await super().get_response(path, scope)
