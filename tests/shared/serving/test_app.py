"""shared.service.ModelSlot: swap, failed load, pinned version, a rewritten folder noticed."""

from __future__ import annotations

import json
import os
from pathlib import Path

from shared.artifacts import publish
from shared.service import ModelSlot


def _write(models: Path, version: str, payload: str, mtime_ns: int | None = None) -> None:
    folder = models / "toy" / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.json").write_text(json.dumps({"payload": payload}))
    if mtime_ns is not None:
        os.utime(folder / "metadata.json", ns=(mtime_ns, mtime_ns))


def _loader(folder: Path) -> str:
    payload = json.loads((folder / "metadata.json").read_text())["payload"]
    if payload == "broken":
        raise ValueError("cannot load")
    return payload


def test_swap_failed_load_pin_and_rewritten_metadata(tmp_path: Path) -> None:
    models = tmp_path
    _write(models, "v1", "one", mtime_ns=1_000_000_000)
    publish(models, "toy", "v1")
    slot: ModelSlot[str] = ModelSlot(name="toy", models_dir=models, loader=_loader)
    assert slot.reload() and slot.current == "one" and slot.version == "v1"
    assert not slot.reload()  # nothing changed: no reload
    _write(models, "v2", "two")
    publish(models, "toy", "v2")
    assert slot.reload() and slot.current == "two"
    _write(models, "v3", "broken")
    publish(models, "toy", "v3")
    assert not slot.reload() and slot.current == "two" and "cannot load" in (slot.last_error or "")
    # back to the served v2 (v3 never loaded): nothing to do
    publish(models, "toy", "v2")
    assert slot.reload() is False and slot.current == "two"
    # the same version name rewritten (another size/mtime of metadata.json) is reloaded
    _write(models, "v2", "two, rewritten", mtime_ns=2_000_000_000)
    assert slot.reload() and slot.current == "two, rewritten"
    pinned: ModelSlot[str] = ModelSlot(name="toy", models_dir=models, loader=_loader, pinned_version="v1")
    assert pinned.reload() and pinned.current == "one"
