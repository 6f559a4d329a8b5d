"""Stage one at a cutoff, for the offline steps that compose both stages.

The ranker's training weeks and ``hmrec evaluate`` need the candidates of many customers as
of a past cutoff: the two-tower trained strictly before it, the other sources' tables built
strictly before it, and then the same :func:`services.candidate.stage_one.stage_one_frame` the
candidate service answers ``/candidates`` with (and ``hmrec infer`` writes to the batch
file). Only the pipeline may import both services, so this small adapter lives here.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd


def candidates_at(
    two_tower: Path | Any, dataset: Any, cutoff: date, customer_ids: list[str], config: Any = None, tables: Any = None
) -> pd.DataFrame:
    """Stage-one candidates (services/candidate/stage_one.py columns) of ``customer_ids`` as of ``cutoff``.

    ``config``: a StageOneConfig (default: the two-tower's own stage-one settings)."""
    from services.candidate import StageOneConfig, load_two_tower, stage_one_batches

    model = two_tower if not isinstance(two_tower, (str, Path)) else load_two_tower(Path(two_tower))
    config = config or StageOneConfig.from_dict(model.metadata.get("stage_one"))
    frames = list(stage_one_batches(model, dataset, cutoff, customer_ids, config, tables=tables))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def evaluated_candidates(ctx: Any, two_tower_dir: Path, customers: list[str], model: Any = None) -> pd.DataFrame:
    """:func:`candidates_at` for an evaluation's week (``ctx``: pipeline.evaluation.EvalContext),
    computed once and shared by every method that re-orders it (``stage_one``, ``source_*``,
    ``pipeline``, ``single_task``); ``model``: the two-tower already loaded from that folder."""
    key = (str(two_tower_dir), tuple(customers))
    held = ctx.memo.get("stage_one")
    if held is None or held[0] != key:
        ctx.memo["stage_one"] = (
            key,
            candidates_at(model if model is not None else two_tower_dir, ctx.dataset, ctx.cutoff, customers),
        )
    return ctx.memo["stage_one"][1]
