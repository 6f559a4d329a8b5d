"""Evaluation methods of the candidate stage.

- ``two_tower``: the model's raw ranking (cosine, no filter, no threshold), best first.
- ``stage_one``: the multi-source candidate list in its own order (what ``/recommend``
  serves when the ranker is down), so recall@100/@500 say what the ranker can at best find.
- ``source_<name>``: one stage-one source alone, by its own score (the table of what each
  source adds; shared.contract.schemas.CANDIDATE_SOURCES).

The model used is the published two-tower if it was trained exactly up to the scored week,
else any version that was; one trained on the scored week is refused (LeakageError).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd

from pipeline.evaluation import EvalContext, check_model_cutoff
from shared.artifacts import ArtifactError, list_versions, model_dir, read_metadata

MODEL_NAME = "two_tower"


def model_cutoff(folder: Path) -> date | None:
    value = read_metadata(folder).get("cutoff")
    return date.fromisoformat(value) if value else None


def pick_two_tower(models_dir: Path, cutoff: date) -> Path | None:
    """The two-tower for the week at ``cutoff``: CURRENT if trained exactly up to it, else any
    version that is, else CURRENT (checked for leakage by the caller). None if there is none."""
    try:
        current = model_dir(models_dir, MODEL_NAME)
    except ArtifactError:
        return None
    if model_cutoff(current) == cutoff:
        return current
    for version in reversed(list_versions(models_dir, MODEL_NAME)):
        folder = Path(models_dir) / MODEL_NAME / version
        if model_cutoff(folder) == cutoff:
            return folder
    return current


def _ranked(frame: pd.DataFrame, order: str = "rank", ascending: bool = True) -> dict[str, list[str]]:
    frame = frame.sort_values(["customer_id", order], ascending=[True, ascending], kind="stable")
    return {str(c): list(g) for c, g in frame.groupby("customer_id", sort=False)["article_id"]}


def build_methods(ctx: EvalContext) -> dict[str, Callable[[list[str]], dict[str, list[str]]]]:
    folder = pick_two_tower(ctx.paths.models_dir, ctx.cutoff)
    if folder is None:
        return {}
    check_model_cutoff(model_cutoff(folder), ctx.cutoff, f"two-tower {folder.name}")

    from pipeline.evaluated_candidates import evaluated_candidates
    from services.candidate import NO_FILTERS, generate_candidates, load_two_tower
    from shared.contract.schemas import CANDIDATE_SOURCES

    model = load_two_tower(folder)

    def stage_one_frame(customers: list[str]) -> pd.DataFrame:
        return evaluated_candidates(ctx, folder, customers, model)

    def two_tower(customers: list[str]) -> dict[str, list[str]]:
        return _ranked(
            generate_candidates(
                model, ctx.dataset, ctx.cutoff, customers, top_k=ctx.k, threshold=None, filters=NO_FILTERS
            )
        )

    def stage_one(customers: list[str]) -> dict[str, list[str]]:
        return _ranked(stage_one_frame(customers))

    def source(name: str) -> Callable[[list[str]], dict[str, list[str]]]:
        def alone(customers: list[str]) -> dict[str, list[str]]:
            frame = stage_one_frame(customers)
            return _ranked(frame[frame[f"src_{name}"] > 0], f"src_{name}", ascending=False)

        return alone

    methods: dict[str, Callable[[list[str]], dict[str, list[str]]]] = {"two_tower": two_tower, "stage_one": stage_one}
    methods.update({f"source_{name}": source(name) for name in CANDIDATE_SOURCES})
    return methods
