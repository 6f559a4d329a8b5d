"""Candidate generation (stage one): a two-tower retrieval model (TensorFlow Recommenders) and
the cheap sources beside it (repurchase, co-purchase, other colours, trending), merged and tagged.

This is the service's front door: what the CLI and the evaluation may call. Nothing outside the
service imports its other modules; other services talk to ``app`` over HTTP only. Names load on
first use, so importing the package (as the serving process does) pulls in no training code.

- ``train_two_tower(dataset, cutoff, models_dir, version, ...) -> Path``: train on purchases
  strictly before ``cutoff``, export ``models/two_tower/<version>/`` atomically, publish it.
  ``for_serving=False`` (the ranker's training weeks) leaves out what only the service reads.
- ``load_two_tower(path)``: a version loaded for repeated use; ``TwoTowerSource`` wraps it as
  stage one's two-tower source.
- ``generate_candidates(model, dataset, cutoff, ...)``: two-tower top-k for the week from
  ``cutoff`` (``CutoffError`` for a model trained past it; ``NO_FILTERS``).
- ``StageOneConfig``, ``build_tables``, ``stage_one_frame``: every source, merged, in stage-one
  order: the one function training, evaluation, the batch file and ``/candidates`` use.
- ``write_stage_one`` / ``stage_one_batches``: the batch file ``inference_results.parquet``.
- ``ServingModel``: what the service serves for one customer; ``MODEL_NAME``,
  ``TwoTowerTrainConfig``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.front_door import lazy_exports

if TYPE_CHECKING:
    from services.candidate.artifact import load_two_tower
    from services.candidate.batch import stage_one_batches, write_stage_one
    from services.candidate.infer import CutoffError, generate_candidates
    from services.candidate.serving import ServingModel
    from services.candidate.settings import MODEL_NAME, NO_FILTERS, TwoTowerTrainConfig
    from services.candidate.stage_one import StageOneConfig, build_tables, stage_one_frame
    from services.candidate.train import train_two_tower
    from services.candidate.two_tower_source import TwoTowerSource

# name -> the module that defines it, imported on first use.
_EXPORTS = {
    "load_two_tower": "services.candidate.artifact",
    "stage_one_batches": "services.candidate.batch",
    "write_stage_one": "services.candidate.batch",
    "CutoffError": "services.candidate.infer",
    "generate_candidates": "services.candidate.infer",
    "ServingModel": "services.candidate.serving",
    "MODEL_NAME": "services.candidate.settings",
    "NO_FILTERS": "services.candidate.settings",
    "TwoTowerTrainConfig": "services.candidate.settings",
    "StageOneConfig": "services.candidate.stage_one",
    "build_tables": "services.candidate.stage_one",
    "stage_one_frame": "services.candidate.stage_one",
    "train_two_tower": "services.candidate.train",
    "TwoTowerSource": "services.candidate.two_tower_source",
}

__all__ = [
    "load_two_tower",
    "stage_one_batches",
    "write_stage_one",
    "CutoffError",
    "generate_candidates",
    "ServingModel",
    "MODEL_NAME",
    "NO_FILTERS",
    "TwoTowerTrainConfig",
    "StageOneConfig",
    "build_tables",
    "stage_one_frame",
    "train_two_tower",
    "TwoTowerSource",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)
