"""What is still warming up, for the page: ``GET /status`` (routes/status.py).

``hmrec run`` serves a first page from quick models and a text-only search index, then brings
everything to full quality in the background (pipeline/warmup.py), recording each step in
``<output>/warmup.json``. The gateway reads that record and its dependencies' ``/readyz``
(polled anyway: the search service reports ``warming.images`` while photos are embedded, the
ranker its ``ordering``) and says, per part of the page, whether it is ready, warming up
(and how far), or unavailable. Without a record (compose, a cluster) only the services'
own word counts.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from shared.config import FULL_RANKER_STEP, FULL_TWO_TOWER_STEP, PHOTO_INDEX_STEP, WARMUP_FILE

FULL_MODEL_STEPS = (FULL_TWO_TOWER_STEP, FULL_RANKER_STEP)


def read_record(output_dir: Path) -> dict[str, Any] | None:
    """The run's record, or None when absent, unreadable, or written by a run that is gone
    (its steps then are not running, whatever the file says)."""
    try:
        record = json.loads((Path(output_dir) / WARMUP_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    record["live"] = _writer_alive(record)
    return record


def _writer_alive(record: dict[str, Any]) -> bool:
    pid, host = record.get("pid"), record.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _steps(record: dict[str, Any] | None, names: tuple[str, ...]) -> list[dict[str, Any]]:
    if not record or not record.get("live"):
        return []
    return [s for s in record.get("steps", []) if s.get("name") in names and s.get("state") in ("pending", "running")]


def _part(state: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"state": state, "message": message, **extra}


def feed_part(deps: dict[str, dict[str, Any]], record: dict[str, Any] | None) -> dict[str, Any]:
    candidate, ranker = deps.get("candidate", {}), deps.get("ranker", {})
    if not candidate.get("ready"):
        return _part("unavailable", "the candidate service is not ready: the feed shows best sellers")
    if not ranker.get("ready"):
        return _part("unavailable", "the ranker is not ready: the feed comes in candidate order")
    waiting = _steps(record, FULL_MODEL_STEPS)
    if waiting:
        running = next((s["name"] for s in waiting if s["state"] == "running"), None)
        doing = f"training the {running.split(' ')[0]} now" if running else "waiting for the photo index"
        return _part("warming", f"a quick model serves the feed; full-quality training in the background ({doing})")
    ordering = ranker.get("ordering") or "mmoe"
    return _part("ready", f"ranker {ranker.get('model_version')} ({ordering})")


def image_part(deps: dict[str, dict[str, Any]], record: dict[str, Any] | None) -> dict[str, Any]:
    search = deps.get("search", {})
    images = (search.get("warming") or {}).get("images") if isinstance(search.get("warming"), dict) else None
    if isinstance(images, dict):
        done, total = int(images.get("done") or 0), int(images.get("total") or 0)
        progress = done / total if total else 0.0
        return _part("warming", f"indexing photos, {progress:.0%}".replace("%", " %"), progress=round(progress, 3))
    if not search.get("ready"):
        return _part("unavailable", "the search service is not ready")
    if _steps(record, (PHOTO_INDEX_STEP,)):
        return _part("warming", "indexing photos", progress=0.0)
    return _part("ready", "search by photo")


def text_part(deps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if not deps.get("search", {}).get("ready"):
        return _part("unavailable", "the search service is not ready")
    return _part("ready", "search by words")


def status(deps: dict[str, dict[str, Any]], record: dict[str, Any] | None) -> dict[str, Any]:
    """The page's view: one entry per part, and the background steps when a live run has any."""
    parts = {"feed": feed_part(deps, record), "text_search": text_part(deps), "image_search": image_part(deps, record)}
    background = None
    if record and record.get("live"):
        background = {
            "phase": record.get("phase"),
            "steps": [{k: s[k] for k in ("name", "state", "seconds") if k in s} for s in record.get("steps", [])],
        }
    return {
        "ready": all(p["state"] == "ready" for p in parts.values()),
        "warming": any(p["state"] == "warming" for p in parts.values()),
        "parts": parts,
        "background": background,
    }
