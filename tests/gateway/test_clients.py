"""Breakers per operation, client errors that never count against a dependency, and the
hostile upload corpus (its form layer) at the gateway."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from services.gateway.breaker import CLOSED, OPEN, BreakerSet, CircuitBreaker
from services.gateway.clients import DependencyRejected, DependencyUnavailable, ServiceClient
from tests.gateway.gateway_fakes import ServerThread
from tests.hostile_corpus import hostile_cases, jpeg


def test_breaker_set_keeps_operations_apart():
    t = [0.0]
    breakers = BreakerSet("search", failure_threshold=2, reset_s=1.0, clock=lambda: t[0])
    image, text = breakers.for_operation("image"), breakers.for_operation("text")
    assert breakers.for_operation("image") is image and image is not text
    image.record_failure()
    image.record_failure()
    assert image.state == OPEN and not image.allow()
    assert text.state == CLOSED and text.allow()
    assert breakers.state == OPEN  # the dependency's summary is its worst operation
    assert breakers.states() == {"default": CLOSED, "image": OPEN, "text": CLOSED}


def _upstream() -> FastAPI:
    app = FastAPI()

    @app.post("/boom")
    async def boom() -> JSONResponse:
        return JSONResponse({"detail": "exploded"}, status_code=500)

    @app.post("/refuse")
    async def refuse() -> JSONResponse:
        return JSONResponse({"detail": "bad photo"}, status_code=415)

    @app.post("/refuse-text")
    async def refuse_text() -> PlainTextResponse:
        return PlainTextResponse("Invalid HTTP request", status_code=400)

    @app.post("/ok")
    async def ok(request: Request) -> dict:
        await request.body()
        return {"ok": True}

    @app.post("/shed")
    async def shed() -> JSONResponse:
        return JSONResponse({"detail": "overloaded"}, status_code=503, headers={"Retry-After": "2"})

    @app.post("/not-json")
    async def not_json() -> PlainTextResponse:
        return PlainTextResponse("<html>proxy error</html>")

    @app.post("/slow")
    async def slow() -> dict:
        await asyncio.sleep(5)
        return {}

    return app


@pytest.fixture(scope="module")
def upstream():
    with ServerThread(_upstream()) as server:
        yield server.url


def _client(url: str, session: aiohttp.ClientSession, threshold: int = 2, clock=None) -> ServiceClient:
    kwargs = {"clock": clock} if clock else {}
    return ServiceClient("search", url, session, CircuitBreaker("search", threshold, 5.0, **kwargs), timeout_s=2.0)


def test_failures_of_one_operation_leave_the_other_answering(upstream):
    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            client = _client(upstream, session)
            for _ in range(2):
                with pytest.raises(DependencyUnavailable):
                    await client.post_json("/boom", {}, operation="image")
            with pytest.raises(DependencyUnavailable, match="breaker open"):
                await client.post_json("/ok", {}, operation="image")
            assert await client.post_json("/ok", {}, operation="text") == {"ok": True}
            assert client.breaker.states()["text"] == CLOSED

    asyncio.run(run())


def test_client_errors_never_count_against_the_breaker(upstream):
    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            client = _client(upstream, session, threshold=1)
            for path in ["/refuse", "/refuse-text"] * 10:
                with pytest.raises(DependencyRejected) as info:
                    await client.post_json(path, {}, operation="image")
                assert 400 <= info.value.status < 500 and info.value.detail
            assert client.breaker.state == CLOSED
            assert await client.post_json("/ok", {}, operation="image") == {"ok": True}
            # ... while a 2xx that is not JSON is the dependency's fault.
            with pytest.raises(DependencyUnavailable, match="not JSON"):
                await client.post_json("/not-json", {}, operation="image")
            assert client.breaker.for_operation("image").state == OPEN

    asyncio.run(run())


def test_a_shedding_dependency_is_not_a_failing_one(upstream):
    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            client = _client(upstream, session, threshold=1)
            for _ in range(5):
                with pytest.raises(DependencyUnavailable, match="shedding") as info:
                    await client.post_json("/shed", {}, operation="text")
                assert info.value.retry_after_s == 2.0
            assert client.breaker.state == CLOSED
            with pytest.raises(DependencyUnavailable) as info:  # a 503 without Retry-After is a failure
                await client.post_json("/boom", {}, operation="text")
            assert client.breaker.for_operation("text").state == OPEN
            with pytest.raises(DependencyUnavailable, match="breaker open") as info:
                await client.post_json("/ok", {}, operation="text")
            assert info.value.retry_after_s == 5.0  # the breaker's reset time

    asyncio.run(run())


def test_a_caller_that_goes_away_frees_the_half_open_trial(upstream):
    t = [0.0]

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            client = _client(upstream, session, threshold=1, clock=lambda: t[0])
            with pytest.raises(DependencyUnavailable):
                await client.post_json("/boom", {}, operation="text")
            t[0] = 10.0  # half-open: one trial may go
            trial = asyncio.create_task(client.post_json("/slow", {}, operation="text"))
            await asyncio.sleep(0.2)
            trial.cancel()
            with pytest.raises(asyncio.CancelledError):
                await trial
            # The cancelled trial said nothing about health: the next caller may try.
            assert await client.post_json("/ok", {}, operation="text") == {"ok": True}
            assert client.breaker.for_operation("text").state == CLOSED

    asyncio.run(run())


FORM_CASES = [(n, kw) for n, layer, kw in hostile_cases() if layer == "form"]


@pytest.mark.parametrize(("name", "kwargs"), FORM_CASES, ids=[c[0] for c in FORM_CASES])
def test_hostile_forms_are_4xx_at_the_gateway_without_an_upstream_call(make_gateway, fakes, name, kwargs):
    gw = make_gateway()
    r = gw.post("/search", **kwargs)
    assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:300])
    assert str(r.json()["detail"]).strip()
    assert fakes.controls["search"].calls == 0, f"{name} reached the search service"


def test_image_failures_do_not_open_text_search(make_gateway, fakes):
    gw = make_gateway(breaker_failure_threshold=2, breaker_reset_s=60)
    fakes.controls["search"].behaviour = "error"
    for _ in range(3):
        r = gw.post("/search", files={"file": ("p.jpg", jpeg(), "image/jpeg")})
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1  # a 503 always says when to retry
    fakes.controls["search"].behaviour = "ok"
    assert gw.post("/search", files={"file": ("p.jpg", jpeg(), "image/jpeg")}).status_code == 503  # image: open
    assert gw.post("/search", json={"query": "dress"}).status_code == 200  # text: its own breaker
    breakers = gw.app.state.gateway.clients["search"].breaker.states()
    assert breakers["image"] == OPEN and breakers["text"] == CLOSED


def test_refused_photos_never_open_the_image_breaker(make_gateway, fakes):
    gw = make_gateway(breaker_failure_threshold=2, breaker_reset_s=60)
    for _ in range(10):  # the fake search refuses anything that is not a JPEG with 415
        assert gw.post("/search", files={"file": ("x.png", b"\x89PNG not really", "image/png")}).status_code == 415
    assert gw.post("/search", files={"file": ("p.jpg", jpeg(), "image/jpeg")}).status_code == 200
