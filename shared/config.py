"""Paths and settings every part of the product shares.

Paths come from the environment (``HM_DATA_DIR``, ``HM_OUTPUT_DIR``) or the CLI's
``--data-dir`` / ``--output-dir``, never from literals scattered through the code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

WARMUP_FILE = "warmup.json"
# Step names in that record which the gateway's /status reads (pipeline/warmup.py writes them).
PHOTO_INDEX_STEP = "photo index"
FULL_TWO_TOWER_STEP = "two-tower (full)"
FULL_RANKER_STEP = "ranker (full)"


class PathSettings(BaseSettings):
    """Where input data lives and where every generated artifact goes."""

    model_config = SettingsConfigDict(env_prefix="HM_", extra="ignore")

    data_dir: Path = Path("data")
    output_dir: Path = Path("output")

    @property
    def cache_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def models_dir(self) -> Path:
        return self.output_dir / "models"

    @property
    def inference_dir(self) -> Path:
        return self.output_dir / "inference"

    @property
    def search_dir(self) -> Path:
        return self.output_dir / "search"

    @property
    def warmup_file(self) -> Path:
        """``hmrec run``'s record of its first-page and full-quality steps (the page's /status)."""
        return self.output_dir / WARMUP_FILE


def get_paths(data_dir: Path | str | None = None, output_dir: Path | str | None = None) -> PathSettings:
    """Settings from the environment, with explicit CLI values taking precedence."""
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = Path(data_dir)
    if output_dir is not None:
        overrides["output_dir"] = Path(output_dir)
    return PathSettings(**overrides)


def configure_tensorflow() -> None:
    """Ask for the Keras 2 API that TF Recommenders needs, before TensorFlow is imported.

    TensorFlow reads ``TF_USE_LEGACY_KERAS`` once, at import, so the CLI calls this before it loads
    any command, and each module that imports TensorFlow (the two-tower's ``model``, ``train``, the
    ranker's Keras half) calls it right before; the Makefile, the images and the test session also
    set the variable in the environment.
    Fails loudly when TensorFlow was already imported with Keras 3, rather than letting the
    two-tower break later with an obscure Keras error.
    """
    if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") not in ("1", "true", "True"):
        raise RuntimeError("TensorFlow was imported with TF_USE_LEGACY_KERAS unset; TF Recommenders needs Keras 2")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
