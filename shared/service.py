"""The common shape of every service: a hot-swappable model slot and health routes.

Serving habits (TF Serving, Triton): load a new model beside the old one, warm it up,
then swap it in with one assignment; if the load fails, the old model keeps serving.
``/readyz`` is false until the first load succeeds.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from fastapi import APIRouter
from fastapi.responses import JSONResponse

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
            if wanted == self.version and not force:
                return False
            try:
                model = self.loader(self.models_dir / self.name / wanted)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the old model serving
                self.last_error = f"loading {self.name}/{wanted} failed: {exc!r}"
                log.exception("model load failed; keeping version %s", self.version)
                return False
            self.current, self.version, self.last_error = model, wanted, None
            log.info("now serving %s/%s", self.name, wanted)
            return True


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
