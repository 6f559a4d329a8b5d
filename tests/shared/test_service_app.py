"""shared.service's app factories: every model service gets the same health, metrics, shedding
and hot-swap behaviour from one place."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fastapi import APIRouter, HTTPException, Request
from fastapi.testclient import TestClient

from shared.artifacts import publish
from shared.service import ModelSlot, ServiceSettings, model_service_app, served
from tests.shared.serving.test_app import _loader  # the same toy model


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
