"""Stage two: the MMoE re-ranker (shared experts, one softmax gate and one tower per task).

This is the service's front door: what the CLI and the evaluation may call. Nothing outside the
service imports its other modules; other services talk to ``app`` over HTTP only. Names load on
first use, so the serving process (NumPy forward pass) never imports TensorFlow or training code.

- ``train_ranker(transactions, customers, articles, train_candidates, train_cutoff, serve_cutoff,
  models_dir, version, config=RankerTrainConfig(...)) -> {"mmoe": dir, "single_task": dir}``:
  fit, gate, export to ``models/mmoe/<version>/`` (and the ablation), publish.
- ``LoadedRanker.load(dir)``: ``rank(customer, article_ids, scores, k)`` and
  ``rerank_frame(candidates, k)``; ``rerank_file(ranker, src, dst)`` for the batch file.
- ``MODEL_NAME``: the models folder's name for this service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.front_door import lazy_exports

if TYPE_CHECKING:
    from services.ranker.rerank import rerank_file
    from services.ranker.serving import LoadedRanker
    from services.ranker.settings import MODEL_NAME
    from services.ranker.train import RankerTrainConfig, train_ranker

# name -> the module that defines it, imported on first use.
_EXPORTS = {
    "rerank_file": "services.ranker.rerank",
    "LoadedRanker": "services.ranker.serving",
    "MODEL_NAME": "services.ranker.settings",
    "RankerTrainConfig": "services.ranker.train",
    "train_ranker": "services.ranker.train",
}

__all__ = [
    "rerank_file",
    "LoadedRanker",
    "MODEL_NAME",
    "RankerTrainConfig",
    "train_ranker",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)
