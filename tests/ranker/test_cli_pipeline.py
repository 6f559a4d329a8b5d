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
                                      "--no-single-task", "--model-version", "it"])
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
    assert all(0 < len(v) <= 30 and len(set(v)) == len(v) for v in recs.values())   # re-ranked top-30 candidates
