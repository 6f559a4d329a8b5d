"""One running product for the whole e2e session: a tiny synthetic world, models made by the
real ``hmrec`` CLI, the four services as uvicorn processes, the shared Redis (own DB/prefix).

The prepared world (data, models, indexes) lives in ``test-artifacts/e2e/world-<digest>``,
where the digest covers every source file under shared/, services/ and pipeline/ (see
``code_fingerprint``): a second run with unchanged code reuses it, any code change rebuilds
it through the CLI. ``HM_E2E_FRESH=1`` always rebuilds (in a temp dir); ``HM_E2E_WORK_DIR``
names a folder to use instead. Service logs land in ``test-artifacts/e2e/logs/``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .stack import (
    REPO_ROOT,
    PrivateRedis,
    ServiceProcess,
    Stack,
    code_fingerprint,
    free_port,
    prepare_world,
)

ARTIFACTS = REPO_ROOT / "test-artifacts"
# One log folder per session (concurrent sessions on a shared machine must not mix logs).
LOG_DIR = ARTIFACTS / "e2e" / "logs" / time.strftime(f"%Y%m%d-%H%M%S-{os.getpid()}")
STALE_S = 3600  # older worlds / logs than this are removed (a concurrent session may still use newer ones)
# The machine's shared Redis; the e2e stack uses its own DB number and key prefix in it.
SHARED_REDIS_URL = os.environ.get("HM_E2E_REDIS_URL", "redis://127.0.0.1:6379/13")


def _redis_reachable(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def e2e_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data_dir, output_dir) with a tiny world and every artifact the services load."""
    _remove_stale(ARTIFACTS / "e2e" / "logs", "*")
    if os.environ.get("HM_E2E_FRESH") == "1":
        return _prepared(tmp_path_factory.mktemp("e2e_world"))
    if os.environ.get("HM_E2E_WORK_DIR"):
        return _prepared(Path(os.environ["HM_E2E_WORK_DIR"]))
    digest = code_fingerprint()
    world = _prepared(ARTIFACTS / "e2e" / f"world-{digest}")
    if code_fingerprint() != digest:
        # A teammate changed the code while the world was being made (minutes): its models
        # may not load with the new code. Make it once more for the code as it is now.
        print("[e2e] the code changed while the world was prepared; preparing it again")
        world = _prepared(ARTIFACTS / "e2e" / f"world-{code_fingerprint()}")
    return world


def _prepared(root: Path) -> tuple[Path, Path]:
    if root.name.startswith("world-"):
        _remove_stale(root.parent, "world-*", keep=root)
    root.mkdir(parents=True, exist_ok=True)
    # Two sessions with the same code share one world: the second waits for the first to finish it.
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = root / ".prepared"
        if done.exists():
            print(f"[e2e] reusing the world this same code prepared: {root}")
        else:
            prepare_world(root, LOG_DIR)
            done.write_text("ok")
    return root / "data", root / "output"


def _remove_stale(folder: Path, pattern: str, keep: Path | None = None) -> None:
    for old in folder.glob(pattern):
        if old != keep and time.time() - old.stat().st_mtime > STALE_S:
            shutil.rmtree(old, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(e2e_world: tuple[Path, Path]) -> Iterator[Stack]:
    """The four services as real processes; every child is ended at session end."""
    if not _redis_reachable(SHARED_REDIS_URL):
        pytest.fail(f"Redis not reachable at {SHARED_REDIS_URL} (start redis-server, or set HM_E2E_REDIS_URL)")
    data_dir, output_dir = e2e_world
    s = Stack(data_dir=data_dir, output_dir=output_dir, log_dir=LOG_DIR, redis_url=SHARED_REDIS_URL)
    try:
        s.start_all()
        yield s
    finally:
        s.shutdown()
        _delete_keys(SHARED_REDIS_URL, s.cache_prefix)


def _delete_keys(url: str, prefix: str) -> None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=1)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass


@pytest.fixture
def live_stack(stack: Stack) -> Iterator[Stack]:
    """The session stack, guaranteed whole before and after the test (which may break it)."""
    stack.ensure_up()
    yield stack
    stack.ensure_up()


@pytest.fixture(scope="session")
def private_redis() -> Iterator[PrivateRedis]:
    r = PrivateRedis(LOG_DIR)
    r.start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="session")
def gateway_private_redis(stack: Stack, private_redis: PrivateRedis) -> Iterator[ServiceProcess]:
    """A second gateway, same services, but cached in a private Redis that tests may stop."""
    gw = stack.make_gateway("gateway_private_redis", free_port(), private_redis.url)
    gw.start()
    try:
        gw.wait_ready()
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="session")
def customers(stack: Stack) -> list[str]:
    """Customer ids the gateway offers (its sample list), for requests."""
    r = httpx.get(stack.gateway + "/customers", params={"limit": 20}, timeout=10)
    assert r.status_code == 200, r.text
    ids = [c["customer_id"] for c in r.json()]
    assert len(ids) >= 8, f"need 8 sample customers, gateway offered {len(ids)}"
    return ids
