"""Redis stops under the events API and comes back: the answer says ``buffered``, the feed
still follows the session, a full buffer refuses (503, counted as dropped), and once Redis is
back every accepted event is in the stream: accepted == written, nothing lost.

A private redis-server (append-only file, fsync always: a restart keeps the stream, as a
production Redis holding events must) on a free port, stopped and restarted by the test."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis

from tests.gateway.gateway_fakes import ARTICLES, CUSTOMER_MID, closed_port

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


class AofRedis:
    def __init__(self, folder: Path) -> None:
        self.port, self.folder, self.proc = closed_port(), folder, None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.5)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    server = AofRedis(tmp_path)
    server.start()
    monkeypatch.setenv("HM_EVENTS_PREFIX", f"hm:test-ev:{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("HM_EVENTS_BUFFER_MAX", "100")
    monkeypatch.setenv("HM_EVENTS_FLUSH_INTERVAL_S", "0.2")
    yield server
    server.stop()


def clicks(n: int) -> dict[str, object]:
    return {"events": [{"customer_id": CUSTOMER_MID, "article_id": ARTICLES[i % 8], "type": "click"} for i in range(n)]}


def counter(gw, outcome: str) -> float:
    line = next(
        x
        for x in gw.get("/metrics").text.splitlines()
        if x.startswith(f'hm_gateway_events_total{{outcome="{outcome}"}}')
    )
    return float(line.split()[-1])


def test_redis_restart_buffers_refuses_when_full_and_loses_nothing(make_gateway, fakes, private_redis):
    gw = make_gateway(redis_url=f"redis://127.0.0.1:{private_redis.port}/0")
    prefix = gw.app.state.events.config.prefix
    assert gw.post("/events", json=clicks(10)).json() == {"accepted": 10, "stored": "redis"}

    private_redis.stop()
    assert gw.post("/events", json=clicks(60)).json() == {"accepted": 60, "stored": "buffered"}
    assert gw.post("/events", json=clicks(40)).json() == {"accepted": 40, "stored": "buffered"}
    full = gw.post("/events", json=clicks(1))
    assert full.status_code == 503 and "buffer full" in full.json()["detail"] and full.headers["Retry-After"]
    # The feed still follows the session: the buffered clicks seed stage one.
    gw.get("/recommend", params={"customer_id": CUSTOMER_MID})
    assert len(fakes.controls["candidate"].last_request["recent_article_ids"]) == 8
    assert (counter(gw, "accepted"), counter(gw, "buffered"), counter(gw, "written"), counter(gw, "dropped")) == (
        110,
        100,
        10,
        1,
    )

    private_redis.start()
    deadline = time.monotonic() + 10
    while counter(gw, "written") < 110 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert counter(gw, "written") == counter(gw, "accepted") == 110
    assert redis.Redis(port=private_redis.port).xlen(f"{prefix}:stream") == 110
    assert gw.post("/events", json=clicks(1)).json()["stored"] == "redis"
