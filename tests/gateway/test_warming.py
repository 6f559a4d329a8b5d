"""``GET /status``: what the page says is still warming up (services.gateway.warming)."""

from __future__ import annotations

import json
import os
import socket

from services.gateway.warming import image_part, read_record, status

READY = {
    "candidate": {"ready": True},
    "ranker": {"ready": True, "model_version": "v2", "ordering": "mmoe"},
    "search": {"ready": True},
}


def _record(tmp_path, steps, pid=None):
    record = {
        "phase": "full_quality",
        "quick": {"two_tower": "v1", "mmoe": "v1"},
        "pid": os.getpid() if pid is None else pid,
        "host": socket.gethostname(),
        "steps": steps,
    }
    (tmp_path / "warmup.json").write_text(json.dumps(record))
    return read_record(tmp_path)


def test_everything_ready_without_a_record():
    body = status(READY, None)
    assert body["ready"] is True and body["warming"] is False and body["background"] is None
    assert {p["state"] for p in body["parts"].values()} == {"ready"}


def test_photos_being_indexed_read_as_a_percentage():
    deps = {**READY, "search": {"ready": True, "warming": {"images": {"done": 4800, "total": 12000}}}}
    part = image_part(deps, None)
    assert part == {"state": "warming", "message": "indexing photos, 40 %", "progress": 0.4}
    body = status(deps, None)
    assert body["warming"] is True and body["ready"] is False
    assert body["parts"]["text_search"]["state"] == "ready"  # text search works meanwhile


def test_a_live_run_still_training_says_the_feed_is_warming(tmp_path):
    record = _record(
        tmp_path,
        [
            {"name": "photo index", "state": "done", "seconds": 300.0},
            {"name": "two-tower (full)", "state": "running"},
            {"name": "ranker (full)", "state": "pending"},
        ],
    )
    assert record is not None and record["live"] is True
    body = status(READY, record)
    assert body["parts"]["feed"]["state"] == "warming"
    assert "training the two-tower now" in body["parts"]["feed"]["message"]
    assert [s["state"] for s in body["background"]["steps"]] == ["done", "running", "pending"]


def test_the_record_of_a_run_that_is_gone_is_not_believed(tmp_path):
    gone = 2**22 + 12345  # above the default pid_max: no such process
    record = _record(tmp_path, [{"name": "ranker (full)", "state": "running"}], pid=gone)
    assert record is not None and record["live"] is False
    body = status(READY, record)
    assert body["parts"]["feed"]["state"] == "ready" and body["background"] is None


def test_an_unreadable_record_is_none(tmp_path):
    assert read_record(tmp_path) is None
    (tmp_path / "warmup.json").write_text("{not json")
    assert read_record(tmp_path) is None


def test_services_not_ready_are_unavailable_not_warming():
    deps = {"candidate": {"ready": True}, "ranker": {"ready": False}, "search": {"ready": False}}
    body = status(deps, None)
    assert body["parts"]["feed"]["state"] == "unavailable"
    assert body["parts"]["image_search"]["state"] == "unavailable"
    assert body["warming"] is False


def test_the_route_reads_the_record_beside_the_outputs(make_gateway, tmp_path):
    _record(tmp_path, [{"name": "ranker (full)", "state": "running"}])
    gw = make_gateway(output_dir=tmp_path)
    body = gw.get("/status").json()
    assert body["parts"]["feed"]["state"] == "warming"
    assert body["parts"]["text_search"]["state"] == "ready"
    assert body["background"]["steps"] == [{"name": "ranker (full)", "state": "running", "seconds": None}]
    (tmp_path / "warmup.json").unlink()
    assert gw.get("/status").json()["ready"] is True
