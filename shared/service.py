"""The common shape of every service: a hot-swappable model slot and health routes.

Serving habits (TF Serving, Triton): load a new model beside the old one, warm it up,
then swap it in with one assignment; if the load fails, the old model keeps serving.
``/readyz`` is false until the first load succeeds.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.artifacts import ArtifactError, resolve_version

log = logging.getLogger(__name__)

M = TypeVar("M")


@dataclass
class ModelSlot(Generic[M]):
    """Holds the served model; ``reload`` loads a version beside it and swaps atomically.

    ``loader(version_dir) -> model`` must fully load *and warm* the model. ``current`` is
    read without a lock: a reference read is atomic, so a request sees either the old or
    the new model, never a half-loaded one.
    """

    name: str
    models_dir: Path
    loader: Callable[[Path], M]
    pinned_version: str | None = None
    current: M | None = None
    version: str | None = None
    last_error: str | None = None
    # (size, mtime_ns) of the served version's metadata.json: a folder rewritten under the same
    # name (an old artifact, or a copy from another machine) is noticed and reloaded.
    fingerprint: tuple[int, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ready(self) -> bool:
        return self.current is not None

    def wanted_version(self) -> str:
        return resolve_version(self.models_dir, self.name, self.pinned_version)

    def reload(self, force: bool = False) -> bool:
        """Load the wanted version if it differs from the served one. Returns True if swapped."""
        with self._lock:
            try:
                wanted = self.wanted_version()
            except ArtifactError as exc:
                self.last_error = str(exc)
                return False
            folder = self.models_dir / self.name / wanted
            stamp = _metadata_stamp(folder)
            if wanted == self.version and stamp == self.fingerprint and not force:
                return False
            try:
                model = self.loader(folder)
            except Exception as exc:  # any failure keeps the old model serving
                self.last_error = f"loading {self.name}/{wanted} failed: {exc!r}"
                log.exception("model load failed; keeping version %s", self.version)
                return False
            self.current, self.version, self.fingerprint, self.last_error = model, wanted, stamp, None
            log.info("now serving %s/%s", self.name, wanted)
            return True


def _metadata_stamp(folder: Path) -> tuple[int, int] | None:
    try:
        st = (folder / "metadata.json").stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


async def poll_for_new_versions(slots: list[ModelSlot[Any]], interval_s: float) -> None:
    """Background task: every ``interval_s`` seconds, swap in any newly published version."""
    while True:
        await asyncio.sleep(interval_s)
        for slot in slots:
            await asyncio.to_thread(slot.reload)


@contextlib.asynccontextmanager
async def serving_slots(slots: list[ModelSlot[Any]], poll_interval_s: float) -> AsyncIterator[None]:
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

    def __init__(self, app: ASGIApp, service: str, max_in_flight: int, retry_after_s: int = SHED_RETRY_AFTER_S) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self.app = app
        self.service = service
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.shed = 0
        self._last_log = -1e9
        self._body = json.dumps({"detail": f"{service} is overloaded ({max_in_flight} requests in flight); "
                                           f"retry after {retry_after_s} s"}).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            self.shed += 1
            now = time.monotonic()
            if now - self._last_log >= 5.0:
                self._last_log = now
                log.warning("%s overloaded: shedding with 503 (%d in flight, %d shed so far)",
                            self.service, self.in_flight, self.shed)
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"), (b"retry-after", str(self.retry_after_s).encode()),
                (b"content-length", str(len(self._body)).encode())]})
            await send({"type": "http.response.body", "body": self._body})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def limit_concurrency(app: FastAPI, service: str, max_in_flight: int | None = None,
                      default: int = DEFAULT_MAX_IN_FLIGHT) -> None:
    """Add :class:`ConcurrencyLimit` to ``app``; ``None`` reads ``HM_<SERVICE>_MAX_IN_FLIGHT``
    (else ``default``). Call it before any middleware that should count the sheds (metrics)."""
    if max_in_flight is None:
        max_in_flight = int(os.environ.get(f"HM_{service.upper()}_MAX_IN_FLIGHT", default))
    app.add_middleware(ConcurrencyLimit, service=service, max_in_flight=max_in_flight)
