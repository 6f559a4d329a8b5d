"""`hmrec run`'s process supervisor: it starts, waits for and stops its children."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline import supervisor
from shared.config import PathSettings
from tests.gateway.gateway_fakes import closed_port

ROOT = Path(__file__).resolve().parents[2]


def test_stop_children_terminates_and_kills_the_stubborn(tmp_path):
    polite = supervisor.start_child(
        "polite", [sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ), tmp_path
    )
    stubborn = supervisor.start_child(
        "stubborn",
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
            "time.sleep(60)",
        ],
        dict(os.environ),
        tmp_path,
    )
    deadline = time.monotonic() + 10
    while "up" not in stubborn.tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    supervisor.stop_children([polite, stubborn], timeout_s=1.0)
    assert polite.proc.returncode == -signal.SIGTERM
    assert stubborn.proc.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 5


@pytest.mark.integration
def test_serve_starts_waits_for_readyz_and_stops_everything_on_sigterm(hm_sample_dir, tmp_path, monkeypatch):
    """Fake model services (the benchmark's, as processes) + the real gateway on the real sample."""
    fake = [sys.executable, str(ROOT / "benchmarks" / "bench_gateway.py"), "--serve-fake"]
    real_cmd = supervisor.uvicorn_cmd

    def cmd(module: str, host: str, port: int) -> list[str]:
        if module == "gateway":
            return real_cmd(module, host, port)
        return [*fake, module, "--port", str(port), "--data-dir", str(hm_sample_dir)]

    started: list[supervisor.Child] = []
    real_start = supervisor.start_child

    def recording_start(*args, **kwargs):
        child = real_start(*args, **kwargs)
        started.append(child)
        return child

    monkeypatch.setattr(supervisor, "uvicorn_cmd", cmd)
    monkeypatch.setattr(supervisor, "start_child", recording_start)
    ports = {name: closed_port() for name in supervisor.MODEL_SERVICES}
    gateway_port = closed_port()
    env = dict(os.environ, HM_GATEWAY_REDIS_URL="", HM_GATEWAY_LOG_LEVEL="WARNING")
    paths = PathSettings(data_dir=hm_sample_dir, output_dir=tmp_path / "output")

    seen_ready = threading.Event()

    def stop_when_ready() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if supervisor.ready(f"http://127.0.0.1:{gateway_port}"):
                seen_ready.set()
                break
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)  # what Ctrl-C / `docker stop` would do

    handler_before = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=stop_when_ready, daemon=True).start()
    code = supervisor.serve(paths, "127.0.0.1", gateway_port, ports, env, ready_timeout_s=120, start_redis=False)
    assert seen_ready.is_set(), [c.tail() for c in started]
    assert code == 0
    assert [c.name for c in started] == ["candidate", "ranker", "search", "gateway"]
    assert all(c.proc.poll() is not None for c in started), "a child outlived hmrec run"
    assert signal.getsignal(signal.SIGTERM) == handler_before  # our handler is gone again
