"""``hmrec evaluate --served``: replay the held-out week through what is served.

Two ways, both scored like every other method:

- in-process (``served``): the published two-tower and ranker loaded by the services' own
  loaders (``ServingModel.load``, ``LoadedRanker.load``) and called per customer exactly as
  the ``/candidates`` and ``/rank`` routes call them;
- over HTTP (``served_http``, ``--gateway-url``): ``GET /recommend?customer_id=...&k=12`` on a
  running gateway, one customer at a time, the feed a shopper gets.

Either must equal the offline ``pipeline`` row: that is the "serve what we evaluate" check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.evaluation import EvalContext, check_model_cutoff
from shared.artifacts import model_dir, read_metadata

Method = Callable[[list[str]], dict[str, list[str]]]
FEED_K = 12


def _cutoff_of(folder: Path):  # type: ignore[no-untyped-def]
    from datetime import date

    value = read_metadata(folder).get("cutoff")
    return date.fromisoformat(value) if value else None


def served_in_process(ctx: EvalContext) -> Method:
    """The published models through the services' own code paths (no HTTP)."""
    import numpy as np

    from services.candidate import ServingModel
    from services.ranker import LoadedRanker
    from shared.contract.candidate_sources import source_matrix_from_dicts

    tt_folder = model_dir(ctx.paths.models_dir, "two_tower")
    rk_folder = model_dir(ctx.paths.models_dir, "mmoe")
    check_model_cutoff(_cutoff_of(tt_folder), ctx.cutoff, f"served two-tower {tt_folder.name}")
    check_model_cutoff(_cutoff_of(rk_folder), ctx.cutoff, f"served ranker {rk_folder.name}")
    candidates = ServingModel.load(tt_folder)
    ranker = LoadedRanker.load(rk_folder)

    def served(customers: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for c in customers:
            _, items = candidates.recommend(c, 1000, None)  # the gateway asks for the whole list
            ranked = ranker.rank(
                c,
                [a for a, _, _ in items],
                np.array([s for _, s, _ in items]),
                FEED_K,
                source_matrix_from_dicts(src for _, _, src in items),
            )
            out[c] = ranked.article_ids
        return out

    return served


def served_over_http(gateway_url: str, timeout_s: float = 10.0) -> Method:
    """The running gateway's ``/recommend`` feed."""
    import httpx

    def served(customers: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        with httpx.Client(base_url=gateway_url.rstrip("/"), timeout=timeout_s) as client:
            for c in customers:
                r = client.get("/recommend", params={"customer_id": c, "k": FEED_K})
                r.raise_for_status()
                body = r.json()
                if body.get("source") != "ranker":
                    raise RuntimeError(
                        f"/recommend for {c} was served by {body.get('source')!r} "
                        f"(degraded: {body.get('degraded')}): not the full pipeline"
                    )
                out[c] = [item["article_id"] for item in body["items"]]
        return out

    return served
