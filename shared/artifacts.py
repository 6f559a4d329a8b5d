"""Versioned model artifacts: ``output/models/<name>/<version>/`` plus a ``CURRENT`` pointer.

Writing happens in a temporary sibling folder that is renamed into place only when the
whole artifact (including ``metadata.json``) is complete, so a crashed training never
leaves a half-written model where a service would load it. Publishing a version means
atomically rewriting ``CURRENT``; services poll it and hot-swap.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

METADATA_FILE = "metadata.json"
CURRENT_FILE = "CURRENT"


class ArtifactError(RuntimeError):
    """An artifact is missing, incomplete or of the wrong kind."""


def model_root(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / name


def new_version(prefix: str = "v") -> str:
    """A fresh version name for any artifact: ``v`` + UTC time to the millisecond
    (e.g. ``v20261201-174302.123``), so two trainings never share a folder or a cache key."""
    now = datetime.now(UTC)
    return f"{prefix}{now:%Y%m%d-%H%M%S}.{now.microsecond // 1000:03d}"


def library_versions(*names: str) -> dict[str, str]:
    """Installed versions of the given distributions (for metadata.json)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = "not installed"
    return out


@contextmanager
def atomic_model_dir(models_dir: Path, name: str, version: str, metadata: dict[str, Any]) -> Iterator[Path]:
    """Yield a temporary folder to write a model into; on success rename it to ``<name>/<version>``.

    ``metadata`` is written as ``metadata.json`` last (callers may mutate the dict inside
    the ``with`` block, e.g. to add metrics). If the block raises, the temporary folder is
    removed and any existing version stays untouched.
    """
    root = model_root(models_dir, name)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=root))
    try:
        yield tmp
        meta = {"name": name, "version": version, "created_at": datetime.now(UTC).isoformat(), **metadata}
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=str))
        final = root / version
        current = root / CURRENT_FILE
        if final.exists() and current.exists() and current.read_text().strip() == version:
            # Services may be reading it right now, and their caches are keyed by this name.
            raise ArtifactError(
                f"{name}/{version} is the published version: write a new version instead of replacing it in place"
            )
        if final.exists():
            # Replace an old copy of the same version: move it aside first so the rename is atomic.
            trash = root / f".{version}.old-{os.getpid()}"
            final.rename(trash)
            tmp.rename(final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(models_dir: Path, name: str, version: str) -> None:
    """Point ``CURRENT`` at ``version`` (atomic rename), so services pick it up."""
    root = model_root(models_dir, name)
    if not (root / version / METADATA_FILE).exists():
        raise ArtifactError(f"cannot publish {name}/{version}: no complete artifact at {root / version}")
    tmp = root / f".{CURRENT_FILE}.tmp-{os.getpid()}"
    tmp.write_text(version + "\n")
    tmp.replace(root / CURRENT_FILE)


def list_versions(models_dir: Path, name: str) -> list[str]:
    """Complete versions (those with a metadata.json), oldest first by creation time."""
    root = model_root(models_dir, name)
    if not root.exists():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / METADATA_FILE).exists()]
    return [p.name for p in sorted(done, key=lambda p: p.stat().st_mtime)]


def resolve_version(models_dir: Path, name: str, version: str | None = None) -> str:
    """The requested version, else the one ``CURRENT`` names, else the newest complete one."""
    root = model_root(models_dir, name)
    if version:
        if not (root / version / METADATA_FILE).exists():
            raise ArtifactError(f"model {name} version {version!r} not found under {root}")
        return version
    current = root / CURRENT_FILE
    if current.exists():
        v = current.read_text().strip()
        if (root / v / METADATA_FILE).exists():
            return v
    versions = list_versions(models_dir, name)
    if not versions:
        raise ArtifactError(f"no trained {name} model under {root}; train one first")
    return versions[-1]


def model_dir(models_dir: Path, name: str, version: str | None = None) -> Path:
    return model_root(models_dir, name) / resolve_version(models_dir, name, version)


def read_metadata(path: Path) -> dict[str, Any]:
    meta_path = Path(path) / METADATA_FILE
    if not meta_path.exists():
        raise ArtifactError(f"{path} has no {METADATA_FILE}: not a complete model artifact")
    return json.loads(meta_path.read_text())
