"""Evaluation methods of the candidate stage.

- ``two_tower``: the model's raw ranking (cosine, no filter, no threshold), best first.
- ``candidates``: the final candidate set as ``hmrec infer`` builds it by default (not-sold
  filter of 8 weeks, threshold 0.3 with the fallback), so recall@100/@500 say what the
  ranker can at best find.
- ``candidates_blend``: the customer's own recent purchases (repurchases are frequent in
  fashion), then the two-tower candidates, then best sellers to fill; reported separately.

The model used is the published two-tower if it was trained exactly up to the scored week,
else any version that was; one trained on the scored week is refused (LeakageError).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from pipeline.evaluation import EvalContext, check_model_cutoff
from shared.artifacts import ArtifactError, list_versions, model_dir, read_metadata

MODEL_NAME = "two_tower"


def _cutoff(folder: Path) -> date | None:
    value = read_metadata(folder).get("cutoff")
    return date.fromisoformat(value) if value else None


def choose_model(models_dir: Path, cutoff: date) -> Path | None:
    try:
        current = model_dir(models_dir, MODEL_NAME)
    except ArtifactError:
        return None
    if _cutoff(current) == cutoff:
        return current
    for version in reversed(list_versions(models_dir, MODEL_NAME)):
        folder = Path(models_dir) / MODEL_NAME / version
        if _cutoff(folder) == cutoff:
            return folder
    return current


def _ranked(frame) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    frame = frame.sort_values(["customer_id", "rank"], kind="stable")
    return {str(c): list(g) for c, g in frame.groupby("customer_id", sort=False)["article_id"]}


def build_methods(ctx: EvalContext) -> dict[str, Callable[[list[str]], dict[str, list[str]]]]:
    folder = choose_model(ctx.paths.models_dir, ctx.cutoff)
    if folder is None:
        return {}
    check_model_cutoff(_cutoff(folder), ctx.cutoff, f"two-tower {folder.name}")

    import shared.config  # noqa: F401
    from services.candidate.artifact import load_two_tower
    from services.candidate.infer import generate_candidates
    from services.candidate.settings import NO_FILTERS, FilterConfig
    from shared.baselines import popular_articles, repurchase_ranking

    model = load_two_tower(folder)

    def two_tower(customers: list[str]) -> dict[str, list[str]]:
        return _ranked(generate_candidates(model, ctx.dataset, ctx.cutoff, customers, top_k=ctx.k,
                                           threshold=None, filters=NO_FILTERS))

    def candidates(customers: list[str]) -> dict[str, list[str]]:
        return _ranked(generate_candidates(model, ctx.dataset, ctx.cutoff, customers, top_k=ctx.k,
                                           threshold=0.3, filters=FilterConfig()))

    def candidates_blend(customers: list[str]) -> dict[str, list[str]]:
        own = repurchase_ranking(ctx.history, customers, ctx.cutoff)
        tt = candidates(customers)
        fill = popular_articles(ctx.history, ctx.k, ctx.cutoff)
        out: dict[str, list[str]] = {}
        for c in customers:
            seen: dict[str, None] = {}
            for a in [*own.get(c, []), *tt.get(c, []), *fill]:
                seen.setdefault(a, None)
                if len(seen) >= ctx.k:
                    break
            out[c] = list(seen)
        return out

    return {"two_tower": two_tower, "candidates": candidates, "candidates_blend": candidates_blend}
