"""Ranker service settings (env prefix ``HM_RANKER_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shared.config import get_paths
from shared.serving.app import ServiceSettings

MODEL_NAME = "mmoe"


class RankerSettings(ServiceSettings):
    """Where the MMoE artifacts live, which version to serve and how to combine task scores
    (``HM_RANKER_*``; the shared ones are in ``shared.serving.app.ServiceSettings``)."""

    model_config = SettingsConfigDict(env_prefix="HM_RANKER_", extra="ignore")

    models_dir: Path = Field(default_factory=lambda: get_paths().models_dir)
    # None: serve whatever CURRENT names, and follow it when it changes (hot swap).
    model_version: str | None = None
    # Overrides the combined-score weights stored in the artifact, e.g. '{"purchase":1,"online":0.5}'.
    score_weights: dict[str, float] | None = None
    # BLAS threads per process: 1 keeps small per-request matrix products fast (see serving.py).
    blas_threads: int = Field(default=1, ge=1, le=64)

    @field_validator("score_weights")
    @classmethod
    def _weights_finite_and_not_all_zero(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        if not value or all(w == 0 for w in value.values()):
            raise ValueError("score_weights must give at least one task a non-zero weight")
        for task, w in value.items():
            if w != w or abs(w) == float("inf"):
                raise ValueError(f"score_weights[{task!r}] must be finite, got {w}")
        return value
