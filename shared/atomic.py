"""Writing data files that are never seen half-written, and completion markers.

Every data file the pipeline writes (the parquet cache of the CSVs, ``infer``'s candidates,
``rerank``'s recommendations, a synthetic world) goes through here:

- :func:`temp_path_for` names a temporary file *unique to this write* beside the target
  (``.<name>.<pid>.<random>.tmp``), so two runs at once never write into the same temporary
  file and rename a mix of both into place (a fixed ``.<name>.tmp`` did exactly that);
- :func:`replace_atomically` flushes the temporary file to disk and renames it over the
  target in one step (``os.replace``: readers see the old file or the new one);
- :func:`atomic_path` wraps both, and removes the temporary file if the write fails;
- :func:`write_marker` / :func:`read_marker`: a small JSON file written (atomically) *last*,
  so a folder or a cache entry without it, or with one that does not match, is known to be
  incomplete and is rebuilt rather than trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def temp_path_for(target: Path | str) -> Path:
    """A fresh temporary path in ``target``'s folder (same filesystem, so the rename is atomic)."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def replace_atomically(tmp: Path | str, target: Path | str, durable: bool = True) -> None:
    """Rename ``tmp`` over ``target`` (after flushing it to disk when ``durable``)."""
    tmp, target = Path(tmp), Path(target)
    if durable:
        _fsync(tmp)
    os.replace(tmp, target)
    if durable:
        with contextlib.suppress(OSError):  # the folder entry itself (not supported everywhere)
            fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


@contextlib.contextmanager
def atomic_path(target: Path | str, durable: bool = True) -> Iterator[Path]:
    """``with atomic_path(out) as tmp: write(tmp)``: ``out`` appears complete or not at all."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    try:
        yield tmp
        replace_atomically(tmp, target, durable)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes_atomic(target: Path | str, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: Path | str, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def write_marker(path: Path | str, content: dict[str, Any]) -> None:
    """Write a completion marker (JSON) atomically; write it after everything it vouches for."""
    write_text_atomic(path, json.dumps(content, sort_keys=True, default=str))


def read_marker(path: Path | str) -> dict[str, Any] | None:
    """The marker's content, or None when it is missing or unreadable (= not complete)."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def file_stamp(path: Path | str) -> dict[str, int]:
    """Size and modification time of a file (what a marker records to vouch for it)."""
    st = Path(path).stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
