"""`hmrec run` on a fresh output folder: a first page from the quick steps, then full quality in
the background, swapped into the running services; Ctrl-C (SIGTERM) stops the background step
and every service.

A real run of the CLI on a `tiny` world (its own data and output folders, its own ports, no
Redis: the gateway's in-process cache), checked over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from .stack import PYTHON, REPO_ROOT, base_env, free_port, generate_tiny_world

pytestmark = pytest.mark.integration


def _wait(predicate, timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}; run log:\n{log.read_text()[-4000:]}")


def _json(url: str) -> dict:
    try:
        return httpx.get(url, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return {}


def _record(output: Path) -> dict:
    try:
        return json.loads((output / "warmup.json").read_text())
    except (OSError, ValueError):
        return {}


def _step_state(output: Path, name: str) -> str | None:
    return next((s["state"] for s in _record(output).get("steps", []) if s["name"] == name), None)


def test_a_first_page_from_quick_steps_then_full_quality_in_the_background(tmp_path, hm_sample_dir):
    data, output, log = tmp_path / "data", tmp_path / "output", tmp_path / "run.log"
    generate_tiny_world(data)
    ports = {name: free_port() for name in ("gateway", "candidate", "ranker", "search")}
    gw = f"http://127.0.0.1:{ports['gateway']}"
    env = base_env()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        env.pop(var)  # what `make run` has
    env.update(HM_GATEWAY_REDIS_URL="", HM_GATEWAY_LOG_LEVEL="WARNING")
    cmd = [PYTHON, "-m", "pipeline.cli", "run", "--data-dir", str(data), "--output-dir", str(output)]
    cmd += ["--port", str(ports["gateway"]), "--no-redis-start"]
    cmd += [f"--{name}-port={ports[name]}" for name in ("candidate", "ranker", "search")]
    with log.open("wb") as fh:
        run = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: "is running" in log.read_text(), 600, "the first page", log)
        record = _record(output)
        quick = record["quick"]
        assert set(quick) == {"two_tower", "mmoe"}
        assert [s["name"] for s in record["steps"]][:2] == ["photo index", "two-tower (full)"]

        # The first page: a re-ranked feed and text search, whatever is still warming up.
        customer = _json(f"{gw}/customers?limit=1")[0]["customer_id"]
        feed = httpx.get(f"{gw}/recommend", params={"customer_id": customer, "k": 12}, timeout=30).json()
        assert feed["source"] == "ranker" and len(feed["items"]) == 12
        assert httpx.post(f"{gw}/search", json={"query": "dress", "k": 5}, timeout=30).status_code == 200
        status = _json(f"{gw}/status")
        assert status["parts"]["text_search"]["state"] == "ready"
        assert status["warming"] is True  # at least the full models are still to come

        # Photos in the background, then swapped in: image search answers.
        _wait(lambda: _step_state(output, "photo index") == "done", 600, "the photo index", log)
        photo = (hm_sample_dir / "images").rglob("*.jpg").__next__().read_bytes()

        def image_search_ok() -> bool:
            files = {"file": ("p.jpg", photo, "image/jpeg")}
            return httpx.post(f"{gw}/search", files=files, data={"k": "5"}, timeout=30).status_code == 200

        _wait(image_search_ok, 120, "image search after the photo index", log)
        _wait(  # the gateway's next poll of the search service's /readyz
            lambda: _json(f"{gw}/status").get("parts", {}).get("image_search", {}).get("state") == "ready",
            30,
            "/status to say image search is ready",
            log,
        )

        # The full two-tower replaces the quick one in the running candidate service.
        _wait(lambda: _step_state(output, "two-tower (full)") == "done", 900, "the full two-tower", log)
        _wait(
            lambda: (
                _json(f"{gw}/readyz").get("dependencies", {}).get("candidate", {}).get("model_version")
                not in (None, quick["two_tower"])
            ),
            120,
            "the candidate service to swap in the full two-tower",
            log,
        )
    finally:
        run.send_signal(signal.SIGTERM)  # what Ctrl-C does
        code = run.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    assert "all services stopped" in log.read_text()
    # Stopped mid-way (the ranker) or finished: never "failed", and nothing left running.
    assert _record(output)["phase"] in ("stopped", "done", "full_quality")
    leftover = subprocess.run(["pgrep", "-f", str(output)], capture_output=True, text=True).stdout.split()
    assert [pid for pid in leftover if int(pid) != os.getpid()] == []
