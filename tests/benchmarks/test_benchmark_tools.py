"""The parts of the long benchmarks that can be checked in seconds: publishing a copied model
version (hot_swap), finding a process by its listening port (soak), and running one pipeline
stage with its own peak memory and resume marker (kaggle_pipeline)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
from pathlib import Path
from types import ModuleType

import pytest

from shared.artifacts import atomic_model_dir, publish, read_metadata, resolve_version

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"hmrec_bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_publish_copy_makes_a_new_complete_version_and_points_current_at_it(tmp_path: Path):
    hot_swap = _load("hot_swap")
    with atomic_model_dir(tmp_path, "mmoe", "v1", {"cutoff": "2020-09-16", "gate_usage": {"p": [1.0]}}) as d:
        (d / "weights.npz").write_bytes(b"\x00\x01weights")
        (d / "store").mkdir()
        (d / "store" / "f.parquet").write_bytes(b"rows")
    publish(tmp_path, "mmoe", "v1")

    old, new = hot_swap.publish_copy(tmp_path, "mmoe", "v1-copy")

    assert (old, new) == ("v1", "v1-copy")
    assert resolve_version(tmp_path, "mmoe") == "v1-copy"
    meta = read_metadata(tmp_path / "mmoe" / "v1-copy")
    # the ranker reports metadata["version"]: it must be the new name, not the copied one
    assert meta["version"] == "v1-copy" and meta["copied_from"] == "v1"
    assert meta["cutoff"] == "2020-09-16" and meta["gate_usage"] == {"p": [1.0]}
    assert (tmp_path / "mmoe" / "v1-copy" / "weights.npz").read_bytes() == b"\x00\x01weights"
    assert (tmp_path / "mmoe" / "v1-copy" / "store" / "f.parquet").read_bytes() == b"rows"
    assert read_metadata(tmp_path / "mmoe" / "v1")["version"] == "v1"  # the original is untouched


def test_the_process_listening_on_a_port_is_found_with_its_memory():
    soak = _load("soak")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert soak.pid_listening_on(port) == os.getpid()
        rss = soak.rss_mb(os.getpid())
        assert rss is not None and rss > 10  # pytest with pandas imported: well over 10 MiB
    assert soak.pid_listening_on(port) is None  # closed: nobody listens any more
    # nearest-rank percentile: p50 of 1..10 is 5, p99 is 10
    assert soak.percentile([float(i) for i in range(10, 0, -1)], 50) == 5.0
    assert soak.percentile([float(i) for i in range(1, 11)], 99) == 10.0


@pytest.mark.slow
def test_a_stage_runs_as_its_own_process_and_resumes(tmp_path: Path):
    kp = _load("kaggle_pipeline")
    cfg = kp.Config("tiny", tmp_path / "data", tmp_path / "output", 0, None, None, None, None, False)
    synth, cache = kp.STAGES[0], kp.STAGES[1]
    assert (synth.name, cache.name) == ("synth", "cache")

    # `cache` before `synth`: no CSVs, the child fails, nothing is marked done
    failed = kp.run_stage(cache, cfg, tmp_path, timeout_s=120)
    assert failed.status == "failed" and failed.returncode != 0
    assert not kp.is_done(cache, cfg, tmp_path)

    ran = kp.run_stage(synth, cfg, tmp_path, timeout_s=120)
    assert ran.status == "ran" and ran.returncode == 0, (tmp_path / "logs" / "synth.log").read_text()[-2000:]
    assert (tmp_path / "data" / "transactions_train.csv").exists()
    # the child's own peak: a Python with numpy/pandas is above 50 MiB, far below this machine's memory
    assert 0.05 < ran.peak_rss_gib < 8
    assert kp.is_done(synth, cfg, tmp_path)
    assert json.loads((tmp_path / ".done" / "synth").read_text())["maxrss_kb"] > 50 * 1024
    # a finished stage whose artifacts went missing is not done any more
    (tmp_path / "data" / "articles.csv").unlink()
    assert not kp.is_done(synth, cfg, tmp_path)
