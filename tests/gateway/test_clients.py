"""The gateway's client to a dependency: breakers per operation, client errors that never count
against a dependency, shedding that is not failing, and a caller that goes away."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from services.gateway.breaker import CLOSED, OPEN, CircuitBreaker
from services.gateway.clients import DependencyRejected, DependencyUnavailable, ServiceClient
from tests.gateway.gateway_fakes import ServerThread


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
