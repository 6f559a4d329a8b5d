"""Evaluation methods of the two-stage recommender: ``pipeline`` and its ``single_task`` ablation.

``pipeline``: stage-one candidates for the scored week (pipeline/stage_one.py: the top-N of a
two-tower trained strictly before ``ctx.cutoff`` plus the customer's own recent purchases and
their age band's best sellers of the last week, all scored by that two-tower), re-ranked by the MMoE (``mmoe`` CURRENT), best first. The whole
re-ranked candidate list is returned, so MAP@12 measures the top 12 and recall@100 the
candidate set. ``single_task`` is the same with the one-task network (``mmoe_single_task``),
so the value of the extra tasks is measured, not assumed.

Both refuse (``LeakageError``) a ranker whose feature store or label week reaches into the
scored week, and a two-tower trained on it.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from pipeline.evaluation import EvalContext, check_model_cutoff
from shared.artifacts import ArtifactError, list_versions, model_dir, read_metadata

DEFAULT_CANDIDATES = 100


def _cutoff(meta: dict) -> date | None:
    value = meta.get("cutoff")
    return date.fromisoformat(value) if value else None


def pick_two_tower(models_dir: Path, cutoff: date) -> Path | None:
    """The two-tower for the week at ``cutoff``: CURRENT if trained exactly up to it, else any
    version that is, else CURRENT (checked for leakage by the caller). None if there is none."""
    try:
        current = model_dir(models_dir, "two_tower")
    except ArtifactError:
        return None
    if _cutoff(read_metadata(current)) == cutoff:
        return current
    for version in reversed(list_versions(models_dir, "two_tower")):
        folder = Path(models_dir) / "two_tower" / version
        if _cutoff(read_metadata(folder)) == cutoff:
            return folder
    return current


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
    check_model_cutoff(_cutoff(read_metadata(two_tower)), ctx.cutoff, f"two-tower {two_tower.name}")
    for folder in rankers.values():
        check_model_cutoff(_cutoff(read_metadata(folder)), ctx.cutoff, f"ranker {folder.parent.name}/{folder.name}")

    from pipeline.stage_one import ranker_candidates
    from services.ranker.serving import LoadedRanker

    cache: dict[tuple[str, ...], object] = {}

    def candidates_for(customers: list[str], n: int, repurchase: int, popular: int):  # type: ignore[no-untyped-def]
        key = (str(n), str(repurchase), str(popular), *customers)
        if key not in cache:
            cache[key] = ranker_candidates(two_tower, ctx.dataset, ctx.cutoff, customers, top_k=n,
                                           max_repurchase=repurchase, max_popular=popular)
        return cache[key]

    def make(folder: Path) -> Callable[[list[str]], dict[str, list[str]]]:
        def recommend(customers: list[str]) -> dict[str, list[str]]:
            ranker = LoadedRanker.load(folder)
            # The evaluated week gets the same kind of candidate list the ranker was trained on.
            n = int(ranker.metadata.get("candidates_per_customer", DEFAULT_CANDIDATES))
            repurchase = int(ranker.metadata.get("max_repurchase_candidates", 0))
            popular = int(ranker.metadata.get("max_popular_candidates", 0))
            ranked = ranker.rerank_frame(candidates_for(customers, n, repurchase, popular), k=ctx.k)
            return {c: list(g) for c, g in ranked.groupby("customer_id", sort=False)["article_id"]}
        return recommend

    return {method: make(folder) for method, folder in rankers.items()}
