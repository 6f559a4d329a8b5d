"""The gateway's client over several replicas: real uvicorn processes, real sockets, keep-alive on.

Each replica (tests/gateway/replica_app.py) answers with its own id, so the tests count who
served what: calls spread evenly over listed URLs and over every address of a name, a killed
replica is ejected without one failed call, and a restarted one is used again.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.gateway.breaker import CircuitBreaker
from services.gateway.clients import DependencyUnavailable, ServiceClient, make_session
from services.gateway.replicas import ReplicaPool, resolve_ipv4
from tests.gateway.gateway_fakes import closed_port

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent


@dataclass
class Replica:
    name: str
    host: str
    port: int
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        env = dict(os.environ, REPLICA_ID=self.name)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "replica_app:app",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=HERE,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/readyz", timeout=1).close()
                return
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, f"{self.name} did not start"
                time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    started: list[Replica] = []

    def make(names: list[str], hosts: list[str] | None = None, port: int | None = None) -> list[Replica]:
        for i, name in enumerate(names):
            replica = Replica(name, (hosts or ["127.0.0.1"] * len(names))[i], port or closed_port())
            replica.start()
            started.append(replica)
        return [r for r in started if r.name in names]

    yield make  # type: ignore[misc]
    for replica in started:
        replica.kill()


def _client(base_url: str, timeout_s: float = 1.0) -> ServiceClient:
    return ServiceClient("ranker", base_url, make_session(), CircuitBreaker("ranker", 5, 5.0), timeout_s, 0.5)


async def _calls(client: ServiceClient, count: int, concurrency: int = 8) -> tuple[Counter, int]:
    """``count`` calls, ``concurrency`` at a time; (answers per replica, failed calls)."""
    served: Counter = Counter()
    failed = 0
    queue = iter(range(count))

    async def worker() -> None:
        nonlocal failed
        for i in queue:
            try:
                served[(await client.post_json("/rank", {"k": i}))["replica"]] += 1
            except DependencyUnavailable:
                failed += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return served, failed


def _table(title: str, served: Counter, failed: int, names: list[str]) -> str:
    total = sum(served.values()) + failed
    rows = [f"{title}: {total} requests, {failed} failed"]
    rows += [f"  {n:<4} {served[n]:>5}  {served[n] / max(total, 1):6.1%}" for n in names]
    return "\n".join(rows)


def test_listed_replicas_share_the_calls_evenly_over_keep_alive(replicas):
    reps = replicas(["a", "b", "c"])

    async def scenario() -> tuple[Counter, int]:
        client = _client(",".join(r.url for r in reps))
        try:
            return await _calls(client, 300)
        finally:
            await client.session.close()

    served, failed = asyncio.run(scenario())
    print("\n" + _table("3 listed replicas", served, failed, ["a", "b", "c"]))
    assert failed == 0
    # Round-robin: 100 each, give or take the calls in flight when the workers start.
    assert all(90 <= served[n] <= 110 for n in "abc"), served


def test_a_name_with_several_addresses_reaches_every_one(replicas):
    port = closed_port()
    reps = replicas(["x", "y"], hosts=["127.0.0.2", "127.0.0.3"], port=port)
    lookups: list[str] = []

    async def two_addresses(host: str, _port: int) -> list[str]:
        lookups.append(host)  # stands in for a DNS server with two A records for the name
        return [r.host for r in reps]

    async def scenario() -> tuple[Counter, int, list[str]]:
        client = _client(f"http://ranker.test:{port}")
        client.replicas = ReplicaPool(client.base_url, resolver=two_addresses)
        try:
            served, failed = await _calls(client, 200)
            ready, _ = await client.readiness(1.0)
            assert ready
            return served, failed, [r["url"] for r in client.replica_state()]
        finally:
            await client.session.close()

    served, failed, urls = asyncio.run(scenario())
    print("\n" + _table("a name with 2 addresses", served, failed, ["x", "y"]))
    assert failed == 0 and lookups[0] == "ranker.test"
    assert urls == [f"http://127.0.0.2:{port}", f"http://127.0.0.3:{port}"]
    assert 90 <= served["x"] <= 110 and 90 <= served["y"] <= 110, served


def test_the_system_resolver_gives_every_ipv4_address():
    assert asyncio.run(resolve_ipv4("localhost", 80)) == ["127.0.0.1"]


def test_a_killed_replica_is_ejected_without_a_failed_call_and_used_again_after_restart(replicas):
    reps = replicas(["a", "b", "c"])
    victim = reps[1]
    phases: dict[str, tuple[Counter, int]] = {}

    async def scenario() -> None:
        client = _client(",".join(r.url for r in reps))
        try:
            phases["before"] = await _calls(client, 300)
            # Long enough that the kill lands mid-load on a quick, quiet machine too (600 calls
            # were all done within the 0.2 s there, and b had served its whole third).
            load = asyncio.create_task(_calls(client, 3000))
            await asyncio.sleep(0.2)  # mid-load
            await asyncio.to_thread(victim.kill)
            phases["b killed mid-load"] = await load
            phases["b dead"] = await _calls(client, 300)
            state = {r["url"]: r for r in client.replica_state()}
            assert not state[victim.url]["admitted"] and state[victim.url]["ejections"] >= 1
            victim.start()  # the same address, as a restarted container or pod
            await client.readiness(1.0)  # the gateway's health poll re-admits it
            phases["b restarted"] = await _calls(client, 300)
        finally:
            await client.session.close()

    asyncio.run(scenario())
    print("\n" + "\n".join(_table(name, *phases[name], ["a", "b", "c"]) for name in phases))
    assert all(failed == 0 for _, failed in phases.values()), {k: v[1] for k, v in phases.items()}
    assert 0 < phases["b killed mid-load"][0]["b"] < 1000  # it served until it died
    assert phases["b dead"][0]["b"] == 0  # every call it got failed over: it served none
    assert all(phases["b dead"][0][n] >= 140 for n in "ac")  # the survivors took its share
    assert 90 <= phases["b restarted"][0]["b"] <= 110  # back to a third


def test_every_replica_ejected_still_gets_calls_and_a_dead_service_fails_fast(replicas):
    reps = replicas(["a"])
    dead = f"http://127.0.0.1:{closed_port()}"

    async def scenario() -> None:
        client = _client(f"{reps[0].url},{dead}")
        try:
            served, failed = await _calls(client, 40)
            assert failed == 0 and served["a"] == 40
            reps[0].kill()
            started = time.perf_counter()
            with pytest.raises(DependencyUnavailable, match="connection failed"):
                await client.post_json("/rank", {"k": 1})
            assert time.perf_counter() - started < 0.5  # refused twice, no waiting
            assert not any(r["admitted"] for r in client.replica_state())
            reps[0].start()
            served, failed = await _calls(client, 10, concurrency=1)  # ejected, still tried: it answers
            assert failed == 0 and served["a"] == 10
        finally:
            await client.session.close()

    asyncio.run(scenario())


def test_an_unready_replica_is_ejected_by_the_health_poll(replicas):
    reps = replicas(["a", "b"])
    urllib.request.urlopen(urllib.request.Request(reps[0].url + "/unready", method="POST"), timeout=5).close()

    async def scenario() -> tuple[Counter, int]:
        client = _client(",".join(r.url for r in reps))
        try:
            ready, body = await client.readiness(1.0)
            assert ready and body["replica"] == "b"
            return await _calls(client, 50)
        finally:
            await client.session.close()

    served, failed = asyncio.run(scenario())
    assert failed == 0 and served == Counter({"b": 50})
