"""The one shape of every service: a hot-swappable slot, health, metrics, load shedding,
thread limits, and the app factories that put them together.

- :class:`Slot` is what a service serves (a model or an index); :class:`ReloadingSlot` is the one
  reload core (TF Serving and Triton habits: load the new version beside the old one, warm it up,
  swap it in with one assignment; a failed load keeps the old one serving). :class:`ModelSlot`
  serves ``models_dir/<name>/<version>``; the search index has its own subclass.
- :func:`service_app` gives every service logging, ``/livez`` + ``/readyz``, ``/metrics``
  (``shared.serving.prometheus``, the same names everywhere), load shedding and a 500 that names
  the log; :func:`model_service_app` adds thread limits and the slots' lifespan (first load,
  then poll). Each service's ``app.py`` keeps only its own routes.
- ``/readyz`` is false until the first load succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.artifacts import ArtifactError, resolve_version
from shared.serving.prometheus import MetricsMiddleware, ServiceMetrics

log = logging.getLogger(__name__)

M = TypeVar("M")


class Slot(Protocol):
    """What every service holds for the artifact it serves (a model or an index).

    ``current`` is read without a lock: a reference read is atomic, so a request sees either
    the old or the new artifact, never a half-loaded one.
    """

    name: str
    version: str | None
    last_error: str | None

    @property
    def current(self) -> Any: ...

    @property
    def ready(self) -> bool: ...

    def reload(self, force: bool = False) -> bool: ...


@dataclass
class Wanted:
    """The version a slot should serve: its name, its folder, and a stamp that changes when
    the folder is rewritten under the same name."""

    version: str
    folder: Path
    stamp: Any = None


class ReloadingSlot(Generic[M]):
    """The one reload core: find the wanted version, load it beside the served one, swap in
    one assignment. A failed load keeps the old artifact serving and records the error.

    Subclasses say what is wanted (:meth:`wanted`) and how to load it (:meth:`load`).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.current: M | None = None
        self.version: str | None = None
        self.last_error: str | None = None
        self.stamp: Any = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self.current is not None

    def wanted(self) -> Wanted:
        raise NotImplementedError

    def load(self, wanted: Wanted) -> M:
        raise NotImplementedError

    def reload(self, force: bool = False) -> bool:
        """Load the wanted version if it differs from the served one. Returns True if swapped."""
        with self._lock:
            try:
                wanted = self.wanted()
            except (ArtifactError, OSError, ValueError, KeyError) as exc:
                self.last_error = str(exc)
                return False
            if wanted.version == self.version and wanted.stamp == self.stamp and not force:
                return False
            try:
                artifact = self.load(wanted)
            except Exception as exc:  # any failure keeps the old artifact serving
                self.last_error = f"loading {self.name}/{wanted.version} failed: {exc!r}"
                log.exception("load of %s failed; keeping version %s", self.name, self.version)
                return False
            self.current, self.version, self.stamp, self.last_error = artifact, wanted.version, wanted.stamp, None
            log.info("now serving %s/%s", self.name, wanted.version)
            return True


class ModelSlot(ReloadingSlot[M]):
    """A versioned model under ``models_dir/<name>/<version>`` (CURRENT, or a pinned version).

    ``loader(version_dir) -> model`` must fully load *and warm* the model.
    """

    def __init__(
        self, name: str, models_dir: Path, loader: Callable[[Path], M], pinned_version: str | None = None
    ) -> None:
        super().__init__(name)
        self.models_dir = Path(models_dir)
        self.loader = loader
        self.pinned_version = pinned_version

    @property
    def fingerprint(self) -> Any:
        """(size, mtime_ns) of the served version's metadata.json."""
        return self.stamp

    def wanted_version(self) -> str:
        return resolve_version(self.models_dir, self.name, self.pinned_version)

    def wanted(self) -> Wanted:
        version = self.wanted_version()
        folder = self.models_dir / self.name / version
        # A folder rewritten under the same name (an old artifact, or a copy from another
        # machine) changes its metadata.json: noticed and reloaded.
        return Wanted(version, folder, _metadata_stamp(folder))

    def load(self, wanted: Wanted) -> M:
        return self.loader(wanted.folder)


def _metadata_stamp(folder: Path) -> tuple[int, int] | None:
    try:
        st = (folder / "metadata.json").stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


async def poll_for_new_versions(slots: Sequence[Slot], interval_s: float) -> None:
    """Background task: every ``interval_s`` seconds, swap in any newly published version."""
    while True:
        await asyncio.sleep(interval_s)
        for slot in slots:
            await asyncio.to_thread(slot.reload)


@contextlib.asynccontextmanager
async def serving_slots(slots: Sequence[Slot], poll_interval_s: float) -> AsyncIterator[None]:
    """Lifespan body every model service shares: first load (off the event loop), then poll.

    The first load may fail (no model yet): ``/readyz`` stays 503 and the poller keeps
    trying, so a model published later is picked up without a restart.
    """
    for slot in slots:
        await asyncio.to_thread(slot.reload)
    poller = asyncio.create_task(poll_for_new_versions(slots, poll_interval_s))
    try:
        yield
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller


def health_router(service: str, readiness: Callable[[], tuple[bool, dict[str, Any]]]) -> APIRouter:
    """``/livez`` (process is up) and ``/readyz`` (200 only when it can serve)."""
    router = APIRouter(tags=["health"])

    @router.get("/livez")
    def livez() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get("/readyz")
    def readyz() -> JSONResponse:
        ready, detail = readiness()
        body = {"ready": ready, "service": service, **detail}
        return JSONResponse(body, status_code=200 if ready else 503)

    return router


def served(slot: Slot, what: str) -> Any:
    """The slot's artifact for one request (one read: the whole request uses one version),
    or 503 while nothing is loaded yet."""
    current = slot.current
    if current is None:
        raise HTTPException(status_code=503, detail=f"no {what} loaded yet: {slot.last_error}")
    return current


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# --- load shedding ---------------------------------------------------------------------------

# A model service on a couple of cores answers a handful of requests at once; past this many in
# flight, a new one would only wait in the threadpool until the gateway's timeout gave up on it.
DEFAULT_MAX_IN_FLIGHT = 32
SHED_RETRY_AFTER_S = 1
# Health and metrics stay answerable under overload: they are how an operator sees it.
UNLIMITED_PATHS = frozenset({"/livez", "/readyz", "/metrics"})


class ConcurrencyLimit:
    """Pure ASGI middleware: at most ``max_in_flight`` requests inside the app at once; the
    next one is answered at once with 503 + ``Retry-After`` instead of joining a queue that
    only grows (uvicorn's ``--limit-concurrency`` counts connections and sends no Retry-After).

    Each process runs one event loop, so a plain counter is exact.
    """

    def __init__(
        self,
        app: ASGIApp,
        service: str,
        max_in_flight: int,
        retry_after_s: int = SHED_RETRY_AFTER_S,
        on_shed: Callable[[], None] | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self.app = app
        self.service = service
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.shed = 0
        self.on_shed = on_shed
        self._last_log = -1e9
        self._body = json.dumps(
            {"detail": f"{service} is overloaded ({max_in_flight} requests in flight); retry after {retry_after_s} s"}
        ).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            self.shed += 1
            if self.on_shed is not None:
                self.on_shed()
            now = time.monotonic()
            if now - self._last_log >= 5.0:
                self._last_log = now
                log.warning(
                    "%s overloaded: shedding with 503 (%d in flight, %d shed so far)",
                    self.service,
                    self.in_flight,
                    self.shed,
                )
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"retry-after", str(self.retry_after_s).encode()),
                        (b"content-length", str(len(self._body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": self._body})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def limit_concurrency(
    app: FastAPI,
    service: str,
    max_in_flight: int | None = None,
    default: int = DEFAULT_MAX_IN_FLIGHT,
    on_shed: Callable[[], None] | None = None,
) -> None:
    """Add :class:`ConcurrencyLimit` to ``app``; ``None`` reads ``HM_<SERVICE>_MAX_IN_FLIGHT``
    (else ``default``). Call it before any middleware that should count the sheds (metrics)."""
    if max_in_flight is None:
        max_in_flight = int(os.environ.get(f"HM_{service.upper()}_MAX_IN_FLIGHT", default))
    app.add_middleware(ConcurrencyLimit, service=service, max_in_flight=max_in_flight, on_shed=on_shed)


# --- threads -----------------------------------------------------------------------------------


def limit_threads(blas: int | None = None, torch_threads: int | None = None) -> None:
    """Cap this process's BLAS pool and/or torch's intra-op threads (None or 0: leave as is).

    Serving multiplies small matrices (a [1, 64] query by [64, n] articles; 200 x 44 features by
    44 x 192): spread over several threads on a busy 2-core machine they took 20 ms per request,
    on one thread 0.3 ms. A service gets its parallelism from concurrent requests instead.
    """
    if blas:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=blas, user_api="blas")
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)


# --- settings and app factories ----------------------------------------------------------------


class ServiceSettings(BaseSettings):
    """What every service is configured with; each service's settings add their own fields
    and an ``env_prefix`` (``HM_CANDIDATE_``, ``HM_RANKER_``, ``HM_SEARCH_``, ``HM_GATEWAY_``)."""

    model_config = SettingsConfigDict(extra="ignore")

    log_level: str = "INFO"
    # How often a model service looks for a newly published version (hot swap).
    poll_interval_s: float = Field(default=10.0, gt=0)
    # Past this many requests in flight, answer 503 + Retry-After at once (see ConcurrencyLimit).
    max_in_flight: int = Field(default=DEFAULT_MAX_IN_FLIGHT, ge=1)


def service_app(
    service: str,
    settings: ServiceSettings,
    readiness: Callable[[], tuple[bool, dict[str, Any]]],
    lifespan: Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]] | None = None,
    metrics: ServiceMetrics | None = None,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """The shape every service shares: FastAPI with logging, load shedding, the shared HTTP
    metrics on ``/metrics`` (a service adds its own to ``metrics.registry``), ``/livez`` +
    ``/readyz``, and a 500 that names the log instead of a traceback. ``app.state.metrics`` and
    ``app.state.settings`` are set."""
    configure_logging(settings.log_level)
    app = FastAPI(lifespan=lifespan, **fastapi_kwargs)
    metrics = metrics or ServiceMetrics(service)
    app.state.metrics = metrics
    app.state.settings = settings
    # Shedding inside, metrics outside: the sheds are counted and timed too.
    limit_concurrency(app, service, settings.max_in_flight, on_shed=metrics.count_shed)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(health_router(service, readiness))

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse({"detail": f"internal error; see the {service} log"}, status_code=500)

    return app


def model_service_app(
    service: str,
    settings: ServiceSettings,
    slots: Sequence[Slot],
    describe: Callable[[], dict[str, Any]],
    threads: dict[str, int | None] | None = None,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A service that serves hot-swappable artifacts: :func:`service_app`, plus thread limits,
    a lifespan that loads every slot and polls for new versions, and ``/readyz`` = every slot
    loaded (``describe()`` adds the service's own detail). ``app.state.slots`` maps slot names
    to slots; ``app.state.slot`` is the first (the one most services have)."""
    limit_threads(**(threads or {}))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with serving_slots(slots, settings.poll_interval_s):
            yield

    def readiness() -> tuple[bool, dict[str, Any]]:
        return all(slot.ready for slot in slots), describe()

    app = service_app(service, settings, readiness, lifespan, **fastapi_kwargs)
    app.state.metrics.watch_slots(slots)
    app.state.slots = {slot.name: slot for slot in slots}
    app.state.slot = slots[0]
    return app
