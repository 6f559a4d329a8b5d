"""Load shedding shared by every service: over the in-flight limit, 503 + Retry-After at once."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from shared.serving.app import ConcurrencyLimit, limit_concurrency


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
