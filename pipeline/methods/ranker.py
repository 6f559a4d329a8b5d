"""Evaluation methods of the two-stage recommender: ``pipeline`` and its ``single_task`` ablation.

``pipeline``: stage-one candidates for the scored week (services/candidate/stage_one.py with a
two-tower trained strictly before ``ctx.cutoff`` and tables built strictly before it: the
lists ``/recommend`` serves), re-ranked by the ranker (``mmoe`` CURRENT: the MMoE, or the
baseline order the publish gate chose), best first. The whole
re-ranked candidate list is returned, so MAP@12 measures the top 12 and recall@100 the
candidate set. ``single_task`` is the same with the one-task network (``mmoe_single_task``),
so the value of the extra tasks is measured, not assumed.

Both refuse (``LeakageError``) a ranker whose feature store or label week reaches into the
scored week, and a two-tower trained on it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.evaluation import EvalContext, check_model_cutoff
from pipeline.methods.candidate import model_cutoff, pick_two_tower
from shared.artifacts import ArtifactError, model_dir


def build_methods(ctx: EvalContext) -> dict[str, Callable[[list[str]], dict[str, list[str]]]]:
    models_dir = ctx.paths.models_dir
    two_tower = pick_two_tower(models_dir, ctx.cutoff)
    rankers: dict[str, Path] = {}
    for method, name in (("pipeline", "mmoe"), ("single_task", "mmoe_single_task")):
        try:
            rankers[method] = model_dir(models_dir, name)
        except ArtifactError:
            continue
    if two_tower is None or not rankers:
        return {}
    check_model_cutoff(model_cutoff(two_tower), ctx.cutoff, f"two-tower {two_tower.name}")
    for folder in rankers.values():
        check_model_cutoff(model_cutoff(folder), ctx.cutoff, f"ranker {folder.parent.name}/{folder.name}")

    from pipeline.evaluated_candidates import evaluated_candidates
    from services.ranker import LoadedRanker

    def make(folder: Path) -> Callable[[list[str]], dict[str, list[str]]]:
        def recommend(customers: list[str]) -> dict[str, list[str]]:
            ranker = LoadedRanker.load(folder)
            # The evaluated week gets the stage one /recommend serves (and the ranker trained on).
            ranked = ranker.rerank_frame(evaluated_candidates(ctx, two_tower, customers), k=ctx.k)
            return {c: list(g) for c, g in ranked.groupby("customer_id", sort=False)["article_id"]}

        return recommend

    return {method: make(folder) for method, folder in rankers.items()}
