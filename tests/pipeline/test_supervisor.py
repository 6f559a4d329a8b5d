"""`hmrec run`: which offline steps it runs, and that it starts, waits for and stops its children."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.commands import run as run_module
from shared.config import PathSettings
from tests.gateway.gateway_fakes import closed_port

ROOT = Path(__file__).resolve().parents[2]


def _data(tmp_path: Path) -> PathSettings:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("articles.csv", "transactions_train.csv"):
        (data / name).write_text("x\n")
    return PathSettings(data_dir=data, output_dir=tmp_path / "output")


def test_prepare_runs_only_missing_steps_in_order(tmp_path, monkeypatch):
    paths = _data(tmp_path)
    # the inference file and a text-only search index exist; models and the re-ranked file do not
    (paths.inference_dir).mkdir(parents=True)
    (paths.inference_dir / "inference_results.parquet").write_bytes(b"")
    paths.search_dir.mkdir(parents=True)
    (paths.search_dir / "manifest.json").write_text('{"version": "s1"}')
    ran: list[list[str]] = []
    monkeypatch.setattr(run_module, "_run_step", lambda args, env, label: ran.append(args))
    run_module.prepare(paths, "small", {})
    assert ran == [["index", "images"], ["train", "candidate"], ["train", "ranker"], ["rerank"]]


def test_prepare_synthesises_data_when_the_folder_is_empty(tmp_path, monkeypatch):
    paths = PathSettings(data_dir=tmp_path / "data", output_dir=tmp_path / "output")
    ran: list[list[str]] = []
    monkeypatch.setattr(run_module, "_run_step", lambda args, env, label: ran.append(args))
    monkeypatch.setattr(run_module, "FULL_QUALITY", [])
    run_module.prepare(paths, "tiny", {})
    assert ran == [["data", "synth", "--scale", "tiny", "--out", str(tmp_path / "data")]]


def test_stop_children_terminates_and_kills_the_stubborn(tmp_path):
    polite = run_module.start_child(
        "polite", [sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ), tmp_path
    )
    stubborn = run_module.start_child(
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
    run_module.stop_children([polite, stubborn], timeout_s=1.0)
    assert polite.proc.returncode == -signal.SIGTERM
    assert stubborn.proc.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 5


@pytest.mark.integration
def test_serve_starts_waits_for_readyz_and_stops_everything_on_sigterm(hm_sample_dir, tmp_path, monkeypatch):
    """Fake model services (the benchmark's, as processes) + the real gateway on the real sample."""
    fake = [sys.executable, str(ROOT / "benchmarks" / "bench_gateway.py"), "--serve-fake"]
    real_cmd = run_module.uvicorn_cmd

    def cmd(module: str, host: str, port: int) -> list[str]:
        if module == "gateway":
            return real_cmd(module, host, port)
        return [*fake, module, "--port", str(port), "--data-dir", str(hm_sample_dir)]

    started: list[run_module.Child] = []
    real_start = run_module.start_child

    def recording_start(*args, **kwargs):
        child = real_start(*args, **kwargs)
        started.append(child)
        return child

    monkeypatch.setattr(run_module, "uvicorn_cmd", cmd)
    monkeypatch.setattr(run_module, "start_child", recording_start)
    ports = {name: closed_port() for name in run_module.MODEL_SERVICES}
    gateway_port = closed_port()
    env = dict(os.environ, HM_GATEWAY_REDIS_URL="", HM_GATEWAY_LOG_LEVEL="WARNING")
    paths = PathSettings(data_dir=hm_sample_dir, output_dir=tmp_path / "output")

    seen_ready = threading.Event()

    def stop_when_ready() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if run_module.ready(f"http://127.0.0.1:{gateway_port}"):
                seen_ready.set()
                break
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)  # what Ctrl-C / `docker stop` would do

    handler_before = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=stop_when_ready, daemon=True).start()
    code = run_module.serve(paths, "127.0.0.1", gateway_port, ports, env, ready_timeout_s=120, start_redis=False)
    assert seen_ready.is_set(), [c.tail() for c in started]
    assert code == 0
    assert [c.name for c in started] == ["candidate", "ranker", "search", "gateway"]
    assert all(c.proc.poll() is not None for c in started), "a child outlived hmrec run"
    assert signal.getsignal(signal.SIGTERM) == handler_before  # our handler is gone again
