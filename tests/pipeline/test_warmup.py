"""``hmrec run``'s two phases (pipeline.warmup): which steps each needs, the record, the worker."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pipeline.warmup import FIRST_PAGE, FULL_QUALITY, FullQualityWorker, Step, WarmupRecord, index_has_photos
from shared.config import PathSettings


def _paths(tmp_path: Path) -> PathSettings:
    return PathSettings(data_dir=tmp_path / "data", output_dir=tmp_path / "output")


def _publish(paths: PathSettings, name: str, version: str) -> None:
    folder = paths.models_dir / name / version
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text("{}")
    (paths.models_dir / name / "CURRENT").write_text(version)


def _names(steps: list[Step], paths: PathSettings, record: WarmupRecord) -> list[str]:
    return [s.name for s in steps if s.needed(paths, record)]


def test_a_fresh_output_needs_every_quick_step_and_every_full_step(tmp_path):
    paths = _paths(tmp_path)
    record = WarmupRecord(paths.warmup_file)
    assert _names(FIRST_PAGE, paths, record) == ["two-tower (quick)", "ranker (quick)", "text search index"]
    assert _names(FULL_QUALITY, paths, record) == [s.name for s in FULL_QUALITY]
    assert FULL_QUALITY[0].args(paths) == ["index"]  # no index at all: text and photos


def test_quick_models_served_are_replaced_in_the_background_and_full_ones_are_kept(tmp_path):
    paths = _paths(tmp_path)
    record = WarmupRecord(paths.warmup_file)
    _publish(paths, "two_tower", "v1")
    _publish(paths, "mmoe", "v1")
    record.remember_quick("two_tower", "v1")
    record.remember_quick("mmoe", "v1")
    (paths.search_dir).mkdir(parents=True)
    (paths.search_dir / "manifest.json").write_text(json.dumps({"version": "s1"}))
    assert _names(FIRST_PAGE, paths, record) == []  # the page can be served
    assert FULL_QUALITY[0].args(paths) == ["index", "images"]  # text is there: photos only
    assert _names(FULL_QUALITY, paths, record)[:3] == ["photo index", "two-tower (full)", "ranker (full)"]

    _publish(paths, "two_tower", "v2")  # the full two-tower was published
    # a later run reads which versions were the quick ones from the record
    later = WarmupRecord(paths.warmup_file)
    assert later.quick == {"two_tower": "v1", "mmoe": "v1"}
    assert "two-tower (full)" not in _names(FULL_QUALITY, paths, later)
    assert "ranker (full)" in _names(FULL_QUALITY, paths, later)


def test_an_index_has_photos_only_when_its_manifest_says_so(tmp_path):
    paths = _paths(tmp_path)
    paths.search_dir.mkdir(parents=True)
    manifest = paths.search_dir / "manifest.json"
    # a text-only rebuild keeps the old embeddings file as a source to reuse: not proof of photos
    (paths.search_dir / "image_embeddings.parquet").write_bytes(b"")
    manifest.write_text(json.dumps({"version": "s1", "image_index": {"status": "pending"}}))
    assert not index_has_photos(paths)
    for status in ("complete", "absent"):
        manifest.write_text(json.dumps({"version": "s2", "image_index": {"status": status}}))
        assert index_has_photos(paths)
    manifest.write_text(json.dumps({"version": "s0"}))  # written before image_index existed
    assert index_has_photos(paths)
    (paths.search_dir / "image_embeddings.parquet").unlink()
    assert not index_has_photos(paths)


def _python(args: list[str], _niceness: int) -> list[str]:
    return [sys.executable, "-c", args[0]]


def _always(_paths: PathSettings, _record: WarmupRecord) -> bool:
    return True


def _worker(tmp_path: Path, steps: list[Step]) -> FullQualityWorker:
    paths = _paths(tmp_path)
    record = WarmupRecord(paths.warmup_file)
    return FullQualityWorker(paths, {}, record, tmp_path / "logs", lambda _m: None, steps=steps, command=_python)


def test_the_worker_runs_its_steps_in_order_and_records_each(tmp_path):
    out = tmp_path / "order.txt"
    steps = [Step(f"step {i}", lambda p, i=i: [f"open({str(out)!r}, 'a').write('{i}')"], _always) for i in range(3)]
    worker = _worker(tmp_path, steps)
    worker.start()
    worker.join(timeout=60)
    assert out.read_text() == "012"
    record = json.loads((tmp_path / "output" / "warmup.json").read_text())
    assert record["phase"] == "done"
    assert [s["state"] for s in record["steps"]] == ["done", "done", "done"]
    assert all(s["seconds"] >= 0 for s in record["steps"])


def test_a_finished_full_training_is_not_repeated_even_if_the_gate_kept_the_quick_model(tmp_path):
    paths = _paths(tmp_path)
    _publish(paths, "mmoe", "v1")
    steps = [Step("ranker (full)", lambda p: ["pass"], _always, "mmoe")]
    worker = _worker(tmp_path, steps)
    worker.record.remember_quick("mmoe", "v1")
    worker.start()
    worker.join(timeout=60)
    later = WarmupRecord(paths.warmup_file)
    assert later.quick == {}
    ranker_full = next(s for s in FULL_QUALITY if s.name == "ranker (full)")
    assert not ranker_full.needed(paths, later)  # v1 is still served: the gate's choice, kept


def test_a_failed_step_stops_the_chain_and_says_so(tmp_path):
    out = tmp_path / "ran.txt"
    steps = [
        Step("fails", lambda p: ["raise SystemExit(3)"], _always),
        Step("after", lambda p: [f"open({str(out)!r}, 'w').write('x')"], _always),
    ]
    worker = _worker(tmp_path, steps)
    worker.start()
    worker.join(timeout=60)
    assert worker.failed == "fails" and not out.exists()
    record = json.loads((tmp_path / "output" / "warmup.json").read_text())
    assert record["phase"] == "failed"
    assert record["steps"][0] == {**record["steps"][0], "state": "failed", "exit_code": 3}
    assert record["steps"][1]["state"] == "pending"


def test_stop_ends_the_running_step_and_starts_no_other(tmp_path):
    out = tmp_path / "ran.txt"
    steps = [
        Step("slow", lambda p: ["import time; time.sleep(60)"], _always),
        Step("after", lambda p: [f"open({str(out)!r}, 'w').write('x')"], _always),
    ]
    worker = _worker(tmp_path, steps)
    worker.start()
    deadline = time.monotonic() + 30
    while worker._proc is None and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    worker.stop(timeout_s=5)
    assert time.monotonic() - started < 10 and not worker.is_alive()
    assert not out.exists()
    record = json.loads((tmp_path / "output" / "warmup.json").read_text())
    assert record["phase"] == "stopped" and worker.failed is None
    assert record["steps"][0]["state"] == "stopped"
