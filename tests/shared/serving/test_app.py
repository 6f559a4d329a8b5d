"""The model services' common app: ModelSlot (swap, failed load, pinned version, a rewritten
folder noticed), the app around it (readiness, swaps, metrics, sheds, one shape for every model
service), and the concurrency limit (shed with Retry-After, health still answering)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from shared.artifacts import publish
from shared.serving.app import (
    ConcurrencyLimit,
    ModelSlot,
    ServiceSettings,
    limit_concurrency,
    model_service_app,
    served,
)


def _write(models: Path, version: str, payload: str, mtime_ns: int | None = None) -> None:
    folder = models / "toy" / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.json").write_text(json.dumps({"payload": payload}))
    if mtime_ns is not None:
        os.utime(folder / "metadata.json", ns=(mtime_ns, mtime_ns))


def _loader(folder: Path) -> str:
    payload = json.loads((folder / "metadata.json").read_text())["payload"]
    if payload == "broken":
        raise ValueError("cannot load")
    return payload


def test_swap_failed_load_pin_and_rewritten_metadata(tmp_path: Path) -> None:
    models = tmp_path
    _write(models, "v1", "one", mtime_ns=1_000_000_000)
    publish(models, "toy", "v1")
    slot: ModelSlot[str] = ModelSlot(name="toy", models_dir=models, loader=_loader)
    assert slot.reload() and slot.current == "one" and slot.version == "v1"
    assert not slot.reload()  # nothing changed: no reload
    _write(models, "v2", "two")
    publish(models, "toy", "v2")
    assert slot.reload() and slot.current == "two"
    _write(models, "v3", "broken")
    publish(models, "toy", "v3")
    assert not slot.reload() and slot.current == "two" and "cannot load" in (slot.last_error or "")
    # back to the served v2 (v3 never loaded): nothing to do
    publish(models, "toy", "v2")
    assert slot.reload() is False and slot.current == "two"
    # the same version name rewritten (another size/mtime of metadata.json) is reloaded
    _write(models, "v2", "two, rewritten", mtime_ns=2_000_000_000)
    assert slot.reload() and slot.current == "two, rewritten"
    pinned: ModelSlot[str] = ModelSlot(name="toy", models_dir=models, loader=_loader, pinned_version="v1")
    assert pinned.reload() and pinned.current == "one"


def _publish(models: Path, version: str, payload: str) -> None:
    folder = models / "toy" / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.json").write_text(json.dumps({"payload": payload}))
    publish(models, "toy", version)


def _toy_app(models: Path) -> TestClient:
    slot: ModelSlot[str] = ModelSlot("toy", models, _loader)
    router = APIRouter()

    @router.get("/echo")
    def echo(request: Request) -> dict[str, str]:
        return {"payload": served(request.app.state.slot, "toy model")}

    @router.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    app = model_service_app(
        "toy",
        ServiceSettings(poll_interval_s=3600),
        [slot],
        lambda: {"model_version": slot.version, "last_error": slot.last_error},
        threads={"blas": 1},
    )
    app.include_router(router)
    return TestClient(app, raise_server_exceptions=False)


def test_not_ready_until_a_model_then_serves_and_swaps(tmp_path: Path) -> None:
    with _toy_app(tmp_path) as client:
        assert client.get("/livez").json() == {"status": "ok", "service": "toy"}
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["ready"] is False
        r = client.get("/echo")
        assert r.status_code == 503 and "no toy model loaded yet" in r.json()["detail"]

        _publish(tmp_path, "v1", "one")
        assert client.app.state.slot.reload() is True
        assert client.get("/readyz").json()["model_version"] == "v1"
        assert client.get("/echo").json() == {"payload": "one"}

        _publish(tmp_path, "v2", "broken")  # a failed load keeps v1 serving, and says why
        assert client.app.state.slot.reload() is False
        body = client.get("/readyz").json()
        assert body["ready"] is True and body["model_version"] == "v1" and "cannot load" in body["last_error"]
        assert client.get("/echo").json() == {"payload": "one"}


def test_metrics_names_and_500_without_a_traceback(tmp_path: Path) -> None:
    _publish(tmp_path, "v1", "one")
    with _toy_app(tmp_path) as client:
        client.get("/echo")
        r = client.get("/boom")
        assert r.status_code == 500 and r.json() == {"detail": "internal error; see the toy log"}
        text = client.get("/metrics").text
    assert 'hm_http_requests_total{method="GET",route="/echo",service="toy",status="200"} 1.0' in text
    assert 'hm_http_requests_total{method="GET",route="/boom",service="toy",status="500"} 1.0' in text
    assert 'hm_served_version_info{service="toy",slot="toy",version="v1"} 1.0' in text
    assert 'hm_slot_ready{service="toy",slot="toy"} 1.0' in text
    assert "hm_http_shed_total" in text


def test_sheds_are_counted(tmp_path: Path) -> None:
    release, entered = threading.Event(), threading.Event()
    router = APIRouter()

    @router.get("/slow")
    def slow() -> dict[str, bool]:
        entered.set()
        return {"released": release.wait(10)}

    app = model_service_app("toy", ServiceSettings(max_in_flight=1), [ModelSlot("toy", tmp_path, _loader)], dict)
    app.include_router(router)
    with TestClient(app) as client:
        first = threading.Thread(target=client.get, args=("/slow",))
        first.start()
        # Inside the app, not only started: a busy machine took over 2 s to get there once.
        assert entered.wait(30)
        shed = client.get("/echo-nothing")
        release.set()
        first.join()
        assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
        assert 'hm_http_shed_total{service="toy"} 1.0' in client.get("/metrics").text


@pytest.mark.parametrize("service", ["candidate", "ranker", "search"])
def test_every_model_service_has_the_same_shape(service: str, tmp_path: Path) -> None:
    """No model published: each service starts, says why it is not ready, and exposes the
    same routes and metric names."""
    if service == "candidate":
        from services.candidate.app import create_app
        from services.candidate.settings import CandidateSettings as Settings

        kwargs = {"models_dir": tmp_path}
    elif service == "ranker":
        from services.ranker.app import create_app  # type: ignore[assignment]
        from services.ranker.settings import RankerSettings as Settings  # type: ignore[assignment]

        kwargs = {"models_dir": tmp_path}
    else:
        from services.search.app import create_app  # type: ignore[assignment]
        from services.search.settings import SearchSettings as Settings  # type: ignore[assignment]

        kwargs = {"index_dir": tmp_path / "search", "models_dir": tmp_path}
    with TestClient(create_app(Settings(**kwargs))) as client:
        assert client.get("/livez").json()["service"] == service
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["last_error"]
        text = client.get("/metrics").text
    assert f'hm_http_requests_total{{method="GET",route="/readyz",service="{service}",status="503"}} 1.0' in text
    assert f'hm_slot_ready{{service="{service}"' in text
    with pytest.raises(HTTPException):
        served(client.app.state.slot, "anything")


def _app(limit: int) -> tuple[FastAPI, asyncio.Event]:
    app = FastAPI()
    gate = asyncio.Event()

    @app.get("/work")
    async def work() -> dict:
        await gate.wait()
        return {"done": True}

    @app.get("/readyz")
    async def readyz() -> dict:
        return {"ready": True}

    limit_concurrency(app, "test", limit)
    return app, gate


def test_over_the_limit_is_shed_with_retry_after_and_health_still_answers():
    async def run() -> None:
        app, gate = _app(2)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            held = [asyncio.create_task(client.get("/work")) for _ in range(2)]
            await asyncio.sleep(0.05)
            shed = await client.get("/work")
            assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
            assert "overloaded" in shed.json()["detail"]
            assert (await client.get("/readyz")).status_code == 200  # health is never shed
            gate.set()
            assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
            assert (await client.get("/work")).status_code == 200  # slots were given back
        limiter = app.middleware_stack
        while not isinstance(limiter, ConcurrencyLimit):
            limiter = limiter.app
        assert limiter.in_flight == 0 and limiter.shed == 1

    asyncio.run(run())


def test_limit_comes_from_the_environment_when_not_given(monkeypatch):
    monkeypatch.setenv("HM_RANKER_MAX_IN_FLIGHT", "7")
    app = FastAPI()
    limit_concurrency(app, "ranker")
    assert app.user_middleware[0].kwargs["max_in_flight"] == 7
