"""The gateway's cache against a real 3-master Redis Cluster on loopback ports.

The cluster: three ``redis-server --cluster-enabled yes`` processes joined by
``redis-cli --cluster create ... --cluster-replicas 0``, torn down in the fixture's finalizer.
The cache's own tests run against it (hit/miss, TTL, fallback to the local cache and back), a
gateway wired to it answers ``/recommend`` from the cluster, and one master is killed in the
middle: the cache degrades to the local one, the gateway keeps answering 200.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from services.gateway.cache import LOCAL, REDIS, ResultCache, cache_key
from shared.serving.redis_client import connect, parse_redis_url, slot_key
from tests.gateway.gateway_fakes import CUSTOMER_MID, CUSTOMER_NEW, CUSTOMER_UNKNOWN_AGE, CUSTOMER_YOUNG

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
        reason="needs redis-server and redis-cli (apt-get install redis-server)",
    ),
]

NODE_TIMEOUT_MS = 1000


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ports(count: int) -> list[int]:
    """Free ports from 7100 up whose cluster bus port (port + 10000) is free too."""
    ports = [p for p in range(7100, 7400) if _free(p) and _free(p + 10000)]
    if len(ports) < count:
        pytest.skip("no free loopback ports in 7100-7399 for a Redis Cluster")
    return ports[:count]


def _cli(port: int, *args: str, timeout: float = 10) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=timeout).stdout


@dataclass
class Cluster:
    ports: list[int]
    folder: Path
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start_node(self, port: int) -> None:
        node_dir = self.folder / str(port)
        node_dir.mkdir(exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--dir",
                str(node_dir),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait(lambda: _cli(port, "ping").strip() == "PONG", 10, f"redis-server on {port} did not start")

    def kill_node(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(timeout=10)

    def state(self, port: int) -> str:
        for line in _cli(port, "cluster", "info").splitlines():
            if line.startswith("cluster_state:"):
                return line.split(":", 1)[1].strip()
        return "unreachable"

    def stop(self) -> None:
        for port in list(self.procs):
            self.procs[port].terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


def _wait(condition, timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(_cluster_ports(3), tmp_path_factory.mktemp("redis-cluster"))
    try:
        for port in c.ports:
            c.start_node(port)
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in c.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        _wait(lambda: all(c.state(p) == "ok" for p in c.ports), 30, "the cluster never reached cluster_state:ok")
        yield c
    finally:
        c.stop()


def _masters_of(cluster: Cluster, keys: list[str]) -> set[int]:
    """The port of the master that owns each key's slot (CLUSTER KEYSLOT + CLUSTER SLOTS)."""
    ranges = []
    port = cluster.ports[0]
    for line_block in _cli(port, "cluster", "nodes").splitlines():
        parts = line_block.split()
        if "master" not in parts[2]:
            continue
        owner = int(parts[1].split(":")[1].split("@")[0])
        for span in parts[8:]:
            low, _, high = span.partition("-")
            ranges.append((int(low), int(high or low), owner))
    owners = set()
    for key in keys:
        slot = int(_cli(port, "cluster", "keyslot", key).strip())
        owners |= {owner for low, high, owner in ranges if low <= slot <= high}
    return owners


def test_the_url_says_cluster_and_lists_its_seed_nodes():
    target = parse_redis_url("redis+cluster://:secret@10.0.0.1:7000,10.0.0.2:7001")
    assert target.cluster and target.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert target.password == "secret" and not target.tls
    assert not parse_redis_url("redis://127.0.0.1:6379/0").cluster
    for bad in ("redis+cluster://h:1/3", "redis+cluster://", "http://h:1", "redis+cluster://h:x"):
        with pytest.raises(ValueError):
            parse_redis_url(bad)


def test_hash_tagged_keys_share_a_slot_and_cache_keys_spread(cluster: Cluster):
    tagged = [slot_key("00a1" * 16, "events"), slot_key("00a1" * 16, "feed"), slot_key("00a1" * 16, "counts")]
    slots = {_cli(cluster.ports[0], "cluster", "keyslot", k).strip() for k in tagged}
    assert len(slots) == 1, slots
    cache_keys = [cache_key("hm:test", "recommend", {"ranker": "v1"}, {"customer_id": str(i)}) for i in range(60)]
    assert _masters_of(cluster, cache_keys) == set(cluster.ports)  # untagged: every master holds some


def test_cache_hit_miss_and_ttl_on_the_cluster(cluster: Cluster):
    prefix = f"hm:test:{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        cache = ResultCache(cluster.url, ttl_s=30, socket_timeout_s=0.2)
        assert isinstance(cache.redis, RedisCluster)
        keys = [cache_key(prefix, "recommend", {"ranker": "v1"}, {"customer_id": str(i)}) for i in range(30)]
        for i, key in enumerate(keys):
            assert await cache.get(key) is None  # a miss
            await cache.set(key, {"i": i, "cached": False})
        for i, key in enumerate(keys):
            assert await cache.get(key) == {"i": i, "cached": False}  # a hit, from the cluster
        assert cache.backend == REDIS and len(cache.local) == 0  # nothing went to the local cache
        ttls = [await cache.redis.ttl(key) for key in keys]
        assert all(0 < ttl <= 30 for ttl in ttls), ttls
        assert await cache.probe() is True
        await cache.close()

    asyncio.run(scenario())
    # The entries are in the cluster itself, not in a client-side copy: a fresh client reads them.
    assert (
        _cli(
            cluster.ports[0], "-c", "get", cache_key(prefix, "recommend", {"ranker": "v1"}, {"customer_id": "7"})
        ).strip()
        == '{"i":7,"cached":false}'
    )


def test_a_cluster_that_is_not_there_falls_back_fast():
    async def scenario() -> None:
        cache = ResultCache(
            "redis+cluster://127.0.0.1:1,127.0.0.1:2", ttl_s=30, socket_timeout_s=0.05, retry_interval_s=60
        )
        started = time.perf_counter()
        assert await cache.get("k") is None
        await cache.set("k", {"x": 1})
        assert await cache.get("k") == {"x": 1}
        assert time.perf_counter() - started < 0.5
        assert cache.backend == LOCAL and cache.state()["error"]
        await cache.close()

    asyncio.run(scenario())


def test_connect_gives_a_single_client_for_a_plain_url():
    client = connect("redis://127.0.0.1:6379/3", 0.1, 4)
    assert not isinstance(client, RedisCluster)
    assert client.connection_pool.connection_kwargs["db"] == 3


def test_a_master_killed_mid_traffic_degrades_the_cache_never_the_answers(cluster: Cluster, make_gateway):
    """Last in the module: it kills a master (and restarts it, so the cluster ends whole)."""
    gateway = make_gateway(redis_url=cluster.url, redis_socket_timeout_s=0.2, redis_retry_interval_s=0.3)
    cache = gateway.app.state.gateway.cache
    customers = [CUSTOMER_YOUNG, CUSTOMER_MID, CUSTOMER_UNKNOWN_AGE, CUSTOMER_NEW]
    for _ in range(2):
        bodies = [gateway.get(f"/recommend?customer_id={c}&k=5").json() for c in customers]
    assert all(b["cached"] for b in bodies) and cache.backend == REDIS  # second round: hits in the cluster

    victim = cluster.ports[1]
    cluster.kill_node(victim)
    statuses, backends, k = [], set(), 5
    deadline = time.monotonic() + 4 * NODE_TIMEOUT_MS / 1000  # past the node timeout: CLUSTERDOWN
    while time.monotonic() < deadline:
        k = k % 20 + 1  # new k: new keys, some on the dead master's slots
        for c in customers:
            statuses.append(gateway.get(f"/recommend?customer_id={c}&k={k}").status_code)
        backends.add(cache.state()["backend"])
    print(
        f"\nmaster {victim} killed: {len(statuses)} /recommend answers, statuses {sorted(set(statuses))}, "
        f"cache backends seen {sorted(backends)}"
    )
    assert set(statuses) == {200}, f"{len(statuses)} requests, statuses {sorted(set(statuses))}"
    assert LOCAL in backends, backends  # it did notice the dead master and fall back
    assert "error" in gateway.get("/readyz").json()["cache"]

    cluster.start_node(victim)  # same nodes.conf: it rejoins with its slots
    _wait(lambda: all(cluster.state(p) == "ok" for p in cluster.ports), 30, "the cluster did not recover")

    async def probe_until_redis() -> None:
        for _ in range(50):
            if await cache.probe():
                return
            await asyncio.sleep(0.2)

    gateway.portal.call(probe_until_redis)
    fresh = [gateway.get(f"/recommend?customer_id={c}&k=33").json() for c in customers]
    again = [gateway.get(f"/recommend?customer_id={c}&k=33").json() for c in customers]
    assert not any(b["cached"] for b in fresh) and all(b["cached"] for b in again)
    assert cache.backend == REDIS
