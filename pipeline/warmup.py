"""A first page in minutes, full quality in the background (``hmrec run``'s two phases).

On a fresh clone the full pipeline takes ~25 minutes on 2 cores, most of it the ranker's
eight training-week two-towers and 12,000 photo embeddings. A shopper needs neither to see a
page: a two-tower of one epoch and a ranker learned from one week pass the same publish gate
(or the gate publishes a baseline order), and text search needs no photos. So:

1. **First page** (before the services start): each servable artifact that is missing is
   made by its quick step (:data:`FIRST_PAGE`), about two minutes in all on ``small``.
2. **Full quality** (after the page is up, in the background, ``nice``'d so the services
   keep their CPU): the photo index, the full two-tower and ranker when what is served is
   still the quick one, then the batch files (:data:`FULL_QUALITY`). Each step publishes
   the usual way, and the services hot-swap (poll ``CURRENT`` / the index manifest).

``output/warmup.json`` says where this stands (which versions are the quick ones, each
step's state); the gateway's ``/status`` reads it, so the page can say what is still warming
up. A later ``hmrec run`` reads it too: a quick model still served is replaced in the
background again, whatever stopped the last run. A failed background step leaves the served
models untouched (every step writes beside and publishes last) and is reported, not retried.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.artifacts import ArtifactError, resolve_version
from shared.atomic import atomic_path
from shared.config import FULL_RANKER_STEP, FULL_TWO_TOWER_STEP, PHOTO_INDEX_STEP, PathSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
# Background steps yield the CPU to the services answering the page.
BACKGROUND_NICENESS = 10


def served_version(paths: PathSettings, name: str) -> str | None:
    try:
        return resolve_version(paths.models_dir, name, None)
    except (ArtifactError, OSError):
        return None


def search_manifest(paths: PathSettings) -> dict[str, Any] | None:
    """The search index's manifest, or None when there is none (or it is unreadable)."""
    from services.search import read_manifest  # lazy: the search stack is heavy to import

    try:
        manifest = read_manifest(paths.search_dir)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def index_has_photos(paths: PathSettings) -> bool:
    """The served index is complete (``hmrec index`` finished its photo step, or the data has no
    photos), in the index's own words (``services.search.index.image_status``). A manifest from
    before ``image_index`` existed and without photo embeddings may be a build stopped before its
    photos: the photo step runs (it is quick and harmless when there are none)."""
    from services.search import ABSENT, COMPLETE, IMAGE_STATUS_KEY, image_status

    manifest = search_manifest(paths)
    if manifest is None:
        return False
    status = image_status(manifest, paths.search_dir)
    return status == COMPLETE or (status == ABSENT and IMAGE_STATUS_KEY in manifest)


# --- the record -----------------------------------------------------------------------------------


class WarmupRecord:
    """``output/warmup.json``: the quick versions and each step's state, rewritten atomically on
    every change (the gateway reads it at any moment). Thread-safe: the background worker and
    the foreground both write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        previous = self._read(path)
        self.quick: dict[str, str] = dict(previous.get("quick", {}))
        self.steps: list[dict[str, Any]] = []
        self.phase = "starting"
        self.started = datetime.now(UTC).isoformat()

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self.phase = phase
            self._write()

    def remember_quick(self, name: str, version: str | None) -> None:
        with self._lock:
            if version:
                self.quick[name] = version
            self._write()

    def forget_quick(self, name: str) -> None:
        """A full training finished: whatever it published (or the gate kept), it is the answer;
        the next run does not train it again."""
        with self._lock:
            self.quick.pop(name, None)
            self._write()

    def plan(self, phase: str, names: list[str]) -> None:
        with self._lock:
            self.phase = phase
            self.steps = [{"name": n, "phase": phase, "state": "pending"} for n in names]
            self._write()

    def mark(self, name: str, state: str, **extra: Any) -> None:
        with self._lock:
            for step in self.steps:
                if step["name"] == name:
                    step.update(state=state, **extra)
            self._write()

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "started": self.started,
            "updated": datetime.now(UTC).isoformat(),
            "quick": dict(self.quick),
            # Who writes it: a reader ignores the steps of a run that is gone.
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "steps": [dict(s) for s in self.steps],
        }

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path, durable=False) as tmp:
            tmp.write_text(json.dumps(self.as_dict(), indent=2))


# --- the steps --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    name: str
    args: Callable[[PathSettings], list[str]]  # hmrec arguments
    needed: Callable[[PathSettings, WarmupRecord], bool]
    model: str | None = None  # the model it publishes (its version is recorded when quick)
    serving: bool = True  # the services load its output (else: a batch file)


def _quick_is_served(name: str) -> Callable[[PathSettings, WarmupRecord], bool]:
    def needed(paths: PathSettings, record: WarmupRecord) -> bool:
        served = served_version(paths, name)
        return served is None or served == record.quick.get(name)

    return needed


def _missing_model(name: str) -> Callable[[PathSettings, WarmupRecord], bool]:
    return lambda paths, _record: served_version(paths, name) is None


def _missing_file(relative: str) -> Callable[[PathSettings, WarmupRecord], bool]:
    return lambda paths, _record: not (paths.output_dir / relative).exists()


# Quick steps: on `small`, one epoch of the two-tower reaches the full run's validation
# recall@100 (0.218 vs 0.219) and a one-week ranker passes the publish gate; ~80 s together.
FIRST_PAGE: list[Step] = [
    Step(
        "two-tower (quick)", lambda p: ["train", "candidate", "--epochs", "1"], _missing_model("two_tower"), "two_tower"
    ),
    Step(
        "ranker (quick)",
        lambda p: [
            "train",
            "ranker",
            "--train-weeks",
            "1",
            "--two-tower-epochs",
            "1",
            "--epochs",
            "5",
            "--no-single-task",
        ],
        _missing_model("mmoe"),
        "mmoe",
    ),
    Step("text search index", lambda p: ["index", "--text-only"], lambda p, _r: search_manifest(p) is None),
]

FULL_QUALITY: list[Step] = [
    # Photos first: image search is missing until they are in; the feed already works.
    Step(
        PHOTO_INDEX_STEP,
        lambda p: ["index", "images"] if search_manifest(p) is not None else ["index"],
        lambda p, _r: not index_has_photos(p),
    ),
    Step(FULL_TWO_TOWER_STEP, lambda p: ["train", "candidate"], _quick_is_served("two_tower"), "two_tower"),
    Step(FULL_RANKER_STEP, lambda p: ["train", "ranker"], _quick_is_served("mmoe"), "mmoe"),
    Step(
        "candidates for every customer",
        lambda p: ["infer"],
        _missing_file("inference/inference_results.parquet"),
        serving=False,
    ),
    Step(
        "re-ranked recommendations",
        lambda p: ["rerank"],
        _missing_file("reranked_recommendations.parquet"),
        serving=False,
    ),
]


def hmrec_command(args: list[str], niceness: int = 0) -> list[str]:
    cmd = [sys.executable, "-m", "pipeline.cli", *args]
    return ["nice", "-n", str(niceness), *cmd] if niceness else cmd


class StepFailed(RuntimeError):
    def __init__(self, args: list[str], exit_code: int, seconds: float) -> None:
        super().__init__(f"`hmrec {' '.join(args)}` failed with exit code {exit_code}")
        self.exit_code, self.seconds = exit_code, seconds


def run_foreground(args: list[str], env: dict[str, str], label: str, echo: Callable[[str], None]) -> float:
    """``hmrec ARGS`` as a subprocess in our process group (Ctrl-C stops it too); its seconds, or
    :class:`StepFailed`."""
    echo(f"{label}: hmrec {' '.join(args)}")
    started = time.monotonic()
    rc = subprocess.call(hmrec_command(args), cwd=REPO_ROOT, env=env)
    seconds = round(time.monotonic() - started, 1)
    if rc != 0:
        raise StepFailed(args, rc, seconds)
    echo(f"{label}: done in {seconds:.0f}s")
    return seconds


def run_quick_steps(
    paths: PathSettings, env: dict[str, str], record: WarmupRecord, echo: Callable[[str], None]
) -> None:
    """The first-page phase, in the foreground: each missing servable artifact by its quick step."""
    todo = [s for s in FIRST_PAGE if s.needed(paths, record)]
    record.plan("first_page", [s.name for s in todo])
    for step in todo:
        record.mark(step.name, "running", started=datetime.now(UTC).isoformat())
        try:
            seconds = run_foreground(step.args(paths), env, step.name, echo)
        except StepFailed as exc:
            record.mark(step.name, "failed", seconds=exc.seconds, exit_code=exc.exit_code)
            raise
        record.mark(step.name, "done", seconds=seconds)
        if step.model:
            record.remember_quick(step.model, served_version(paths, step.model))


class FullQualityWorker(threading.Thread):
    """The full-quality phase: each needed step as a ``nice``'d subprocess, one after another,
    while the services serve. ``stop()`` ends the running step (its output is written beside and
    never published half-done) and the rest are not started."""

    def __init__(
        self,
        paths: PathSettings,
        env: dict[str, str],
        record: WarmupRecord,
        log_dir: Path,
        echo: Callable[[str], None],
        steps: list[Step] | None = None,
        niceness: int = BACKGROUND_NICENESS,
        command: Callable[[list[str], int], list[str]] = hmrec_command,
    ) -> None:
        super().__init__(name="full-quality", daemon=True)
        self.paths, self.env, self.record, self.log_dir, self.echo = paths, env, record, log_dir, echo
        self.steps = FULL_QUALITY if steps is None else steps
        self.niceness = niceness
        self.command = command
        self._stop_event = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self.failed: str | None = None

    def pending(self) -> list[Step]:
        return [s for s in self.steps if s.needed(self.paths, self.record)]

    def run(self) -> None:
        todo = self.pending()
        self.record.plan("full_quality", [s.name for s in todo])
        for step in todo:
            if self._stop_event.is_set():
                return
            if not self._run_step(step):
                stopped = self._stop_event.is_set()
                self.failed = None if stopped else step.name
                self.record.set_phase("stopped" if stopped else "failed")
                return
        self.record.set_phase("done")
        if todo:
            self.echo("full quality reached: every model and index is the full one")

    def _run_step(self, step: Step) -> bool:
        args = step.args(self.paths)
        log_path = self.log_dir / f"warmup-{step.name.split(' ')[0]}.log"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.record.mark(step.name, "running", started=datetime.now(UTC).isoformat(), log=str(log_path))
        self.echo(f"background: {step.name}: hmrec {' '.join(args)} (log {log_path})")
        started = time.monotonic()
        with log_path.open("ab") as fh:
            self._proc = subprocess.Popen(
                self.command(args, self.niceness),
                cwd=REPO_ROOT,
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C stops it through stop(), in order
            )
            rc = self._proc.wait()
        seconds = round(time.monotonic() - started, 1)
        if self._stop_event.is_set():
            self.record.mark(step.name, "stopped", seconds=seconds)
            return False
        if rc != 0:
            self.record.mark(step.name, "failed", seconds=seconds, exit_code=rc)
            self.echo(f"background: {step.name} FAILED (exit {rc}); the served models are unchanged. Log: {log_path}")
            return False
        self.record.mark(step.name, "done", seconds=seconds)
        if step.model:  # even if the publish gate kept the quick model: it beat the full one
            self.record.forget_quick(step.model)
        self.echo(f"background: {step.name}: done in {seconds:.0f}s")
        return True

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop_event.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.join(timeout=timeout_s)
