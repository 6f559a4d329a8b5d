"""ONNX Runtime inference for the search encoders (photo CNN and MiniLM), with torch as the fallback.

Each torch model is exported once with the TorchScript exporter (``torch.onnx.export(...,
dynamo=False)``, which needs the ``onnx`` package) to a cache folder, under a name keyed by the
weights' package version, torch's version and the opset: a new weights release or torch gets a new
file, never a stale one. The file is written to a temporary name and renamed, so concurrent
processes (the index build and the search service) never read half a file.

Where the file comes from:

- ``HM_ONNX_CACHE_DIR`` when set, else ``<HM_OUTPUT_DIR>/cache/onnx``; when that folder is not
  writable (a read-only volume), the system temp folder.

``HM_SEARCH_BACKEND`` picks the runtime: ``auto`` (default: ONNX Runtime, torch when onnxruntime
is missing or the export fails), ``onnx`` (fail loudly instead of falling back) or ``torch``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

Backend = Literal["auto", "onnx", "torch"]
OPSET = 17


def requested_backend(backend: str | None = None) -> Backend:
    value = (backend or os.environ.get("HM_SEARCH_BACKEND") or "auto").strip().lower()
    if value not in ("auto", "onnx", "torch"):
        raise ValueError(f"HM_SEARCH_BACKEND must be auto, onnx or torch, not {value!r}")
    return value  # type: ignore[return-value]


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def model_file_name(model: str, weights_package: str) -> str:
    """``<model>-<weights package version>-torch<version>-opset<n>.onnx``."""
    torch_version = _version("torch").split("+")[0]
    return f"{model}-{_version(weights_package)}-torch{torch_version}-opset{OPSET}.onnx"


def cache_dirs() -> list[Path]:
    """Folders to look in / write to, best first."""
    explicit = os.environ.get("HM_ONNX_CACHE_DIR")
    if explicit:
        return [Path(explicit)]
    from shared.config import get_paths

    return [get_paths().output_dir / "cache" / "onnx", Path(tempfile.gettempdir()) / "hmrec-onnx"]


def cached_model(name: str, export: Callable[[Path], None]) -> Path:
    """The path of the ONNX file ``name``: found in a cache folder, or exported there by
    ``export(tmp_path)`` and renamed into place (atomic)."""
    folders = cache_dirs()
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    last_error: OSError | None = None
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.tmp-{os.getpid()}"
            try:
                export(tmp)
                tmp.replace(folder / name)
            finally:
                tmp.unlink(missing_ok=True)
            log.info("exported %s to %s", name, folder)
            return folder / name
        except OSError as exc:  # not writable: try the next folder
            last_error = exc
            log.warning("cannot write the ONNX cache in %s: %s", folder, exc)
    raise OSError(f"no writable ONNX cache folder among {folders}") from last_error


def session(path: Path, threads: int) -> Any:
    """An ORT CPU session with ``threads`` intra-op threads (0: ORT's default, one per core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads sleep instead of spinning: on a shared machine spinning burnt CPU the
    # neighbours (and our own decode thread) needed.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def export_module(module: Any, args: tuple[Any, ...], path: Path, inputs: list[str], dynamic: dict[str, Any]) -> None:
    """TorchScript export of ``module`` (eval mode) with one output named ``output``."""
    import torch

    with torch.no_grad():
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            input_names=inputs,
            output_names=["output"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
        )


def onnx_session(
    model: str,
    weights_package: str,
    export: Callable[[Path], None],
    what: str,
    backend: str | None = None,
    device: str | None = None,
    threads: int | None = None,
) -> Any | None:
    """The ORT session of ``model`` (exported by ``export`` on first use), or None where torch runs
    it instead: ``torch`` asked for, a device other than the CPU, or (``auto``) onnxruntime missing
    or the export failing. With ``onnx`` asked for, a failure raises instead of falling back."""
    choice = requested_backend(backend)
    if choice == "torch" or device not in (None, "cpu") or (choice == "auto" and not onnxruntime_available()):
        return None
    try:
        path = cached_model(model_file_name(model, weights_package), export)
        return session(path, default_threads() if threads is None else threads)
    except Exception as exc:
        if choice == "onnx":
            raise
        log.warning("ONNX Runtime %s unavailable (%s); using torch", what, exc)
        return None


def default_threads() -> int:
    """``HM_SEARCH_ORT_THREADS`` (0: one per core), default 1: measured on the shared 2-core
    machine (load 4), one ORT thread plus the index build's decode thread embedded 1,000 photos
    in 15 s wall / 14 CPU s, two ORT threads in 28 s / 17 CPU s (benchmarks/bench_image_embed.py)."""
    return int(os.environ.get("HM_SEARCH_ORT_THREADS", "1"))
