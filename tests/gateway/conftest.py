"""Fixtures: the three fake services (module-wide), and a gateway wired to them per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.gateway.gateway_fakes import (
    FakeControl,
    ServerThread,
    closed_port,
    fake_candidate,
    fake_ranker,
    fake_search,
    redis_available,
    tiny_catalogue,
)


class Fakes:
    def __init__(self) -> None:
        self.controls = {"candidate": FakeControl(), "ranker": FakeControl(), "search": FakeControl()}
        factories = {"candidate": fake_candidate, "ranker": fake_ranker, "search": fake_search}
        self.servers = {name: ServerThread(factories[name](c)) for name, c in self.controls.items()}

    def reset(self) -> None:
        for control in self.controls.values():
            control.behaviour, control.calls, control.last_request, control.version = "ok", 0, {}, "v1"
            control.columns = True

    def url(self, name: str) -> str:
        return self.servers[name].url


@pytest.fixture(scope="module")
def fakes() -> Iterator[Fakes]:
    f = Fakes()
    for server in f.servers.values():
        server.__enter__()
    yield f
    for server in f.servers.values():
        server.__exit__(None, None, None)


@pytest.fixture
def make_gateway(fakes: Fakes, tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """make_gateway(**setting overrides) -> a started TestClient; each gets its own cache prefix."""
    fakes.reset()
    clients: list[TestClient] = []
    catalogue = tiny_catalogue(tmp_path / "images")

    def make(**overrides: object) -> TestClient:
        values: dict[str, object] = {
            "candidate_url": fakes.url("candidate"),
            "ranker_url": fakes.url("ranker"),
            "search_url": fakes.url("search"),
            "redis_url": "redis://127.0.0.1:6379/0" if redis_available() else f"redis://127.0.0.1:{closed_port()}/0",
            "cache_prefix": f"hm:test:{uuid.uuid4().hex[:8]}",
            "health_interval_s": 60.0,
            "candidate_timeout_s": 0.5,
            "ranker_timeout_s": 0.5,
            "search_timeout_s": 0.5,
            "search_image_timeout_s": 0.5,
            "breaker_failure_threshold": 100,
            "breaker_reset_s": 0.3,
            "data_dir": tmp_path,
            "log_level": "WARNING",
        }
        values.update(overrides)
        client = TestClient(create_app(GatewaySettings(**values), catalogue=catalogue))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
