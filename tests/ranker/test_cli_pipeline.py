"""The real two-stage path on the tiny world: `hmrec train ranker` with two-tower candidates,
then the `pipeline` evaluation method (two-tower for the scored week -> MMoE)."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.artifacts import read_metadata, resolve_version

pytest.importorskip("tensorflow_recommenders")


@pytest.mark.slow
@pytest.mark.integration
def test_train_ranker_command_then_pipeline_method(tiny_world: Path, tmp_path: Path) -> None:
    from pipeline.cli import cli
    from pipeline.evaluation import load_context
    from pipeline.methods.ranker import build_methods
    from services.candidate.train import train_two_tower
    from shared.config import get_paths
    from shared.split import shift_cutoff

    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["train", "ranker", "--data-dir", str(tiny_world), "--output-dir", str(out),
                                      "--epochs", "2", "--two-tower-epochs", "1", "--candidates", "30",
                                      "--no-single-task", "--model-version", "it", "--train-weeks", "1"])
    assert result.exit_code == 0, result.output
    paths = get_paths(tiny_world, out)
    ctx = load_context(paths, k=50)
    meta = read_metadata(out / "models" / "mmoe" / "it")
    week = shift_cutoff(ctx.cutoff, 1)
    assert meta["cutoff"] == ctx.cutoff.isoformat() and meta["train_label_weeks"] == [week.isoformat()]
    assert meta["candidate_models"] == [f"ranker-train-{week.isoformat()}"]
    # The training-week two-tower is kept but never published (the candidate service's stays CURRENT).
    tt_meta = read_metadata(out / "models" / "two_tower" / f"ranker-train-{week.isoformat()}")
    assert tt_meta["cutoff"] == week.isoformat()
    assert not (out / "models" / "two_tower" / "CURRENT").exists()
    assert "epoch 2:" in result.output and "val_map12" in result.output

    train_two_tower(ctx.dataset, ctx.cutoff, paths.models_dir, "v1", epochs=1, progress=False)
    assert resolve_version(paths.models_dir, "two_tower") == "v1"
    methods = build_methods(ctx)
    assert set(methods) == {"pipeline"}
    customers = ctx.customers[:20]
    recs = methods["pipeline"](customers)
    assert set(recs) == set(customers)
    # Re-ranked candidates: the two-tower's top 30, up to 20 of the customer's own purchases and
    # up to 30 best sellers of their age band.
    assert all(0 < len(v) <= 80 and len(set(v)) == len(v) for v in recs.values())
    assert meta["max_repurchase_candidates"] == 20 and meta["max_popular_candidates"] == 30

    # Stage one as the ranker sees it, with the scored week's two-tower.
    import numpy as np

    from pipeline.stage_one import ranker_candidates, two_tower_scores
    from services.candidate.artifact import load_two_tower
    from shared.split import history_before

    model = load_two_tower(paths.models_dir / "two_tower" / "v1")
    customers = ctx.customers[:40]
    cands = ranker_candidates(model, ctx.dataset, ctx.cutoff, customers, top_k=10, max_repurchase=5)
    assert set(cands["source"]) == {"two_tower", "repurchase"}
    assert not cands.duplicated(["customer_id", "article_id"]).any()
    tt = cands[cands.source == "two_tower"]
    assert (tt.groupby("customer_id").size() == 10).all()
    # The pair scorer reproduces the retrieval scores exactly, so repurchase scores mean the same.
    again = two_tower_scores(model, ctx.dataset, ctx.cutoff, tt.customer_id.to_numpy(dtype=object),
                             tt.article_id.to_numpy(dtype=object))
    assert np.allclose(again, tt.score.to_numpy(), atol=1e-5)
    rep = cands[cands.source == "repurchase"]
    before = history_before(ctx.dataset.transactions, ctx.cutoff)
    bought = set(zip(before.customer_id.astype(str), before.article_id.astype(str), strict=True))
    assert all((c, a) in bought for c, a in zip(rep.customer_id, rep.article_id, strict=True))
    assert (rep.groupby("customer_id").size() <= 5).all() and np.isfinite(rep.score).all()

    # The third source: last week's best sellers of the customer's age band, scored the same way.
    from shared.baselines import age_popular_recommendations

    with_popular = ranker_candidates(model, ctx.dataset, ctx.cutoff, customers, top_k=10, max_repurchase=5,
                                     max_popular=8)
    assert set(with_popular["source"]) == {"two_tower", "repurchase", "popular"}
    assert not with_popular.duplicated(["customer_id", "article_id"]).any()
    popular = age_popular_recommendations(before, ctx.dataset.customers, customers, 8, ctx.cutoff)
    pop = with_popular[with_popular.source == "popular"]
    assert all(a in popular[c] for c, a in zip(pop.customer_id, pop.article_id, strict=True))
    assert np.isfinite(pop.score).all()
    # Every customer's list holds the union: nothing a source found is lost.
    for c in customers:
        got = set(with_popular.article_id[with_popular.customer_id == c])
        assert set(popular[c]) <= got
