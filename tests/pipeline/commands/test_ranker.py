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
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "ranker",
            "--data-dir",
            str(tiny_world),
            "--output-dir",
            str(out),
            "--epochs",
            "2",
            "--two-tower-epochs",
            "1",
            "--no-single-task",
            "--model-version",
            "it",
            "--train-weeks",
            "1",
        ],
    )
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

    # The publish gate compared the MMoE with the baselines' order of the same validation lists
    # and published the winner: the MMoE itself, or (no incumbent yet) the best baseline's order.
    gate = meta["publish_gate"]
    assert gate["action"] in ("publish", "publish_baseline") and gate["incumbent"] is None
    assert set(gate["baselines"]) == {"repurchase_popular", "recent_popular", "recent_trending"}
    served = resolve_version(paths.models_dir, "mmoe")
    if gate["action"] == "publish":
        assert gate["model_map12"] >= gate["best_baseline_map12"] and served == "it"
    else:
        assert gate["model_map12"] < gate["best_baseline_map12"]
        assert served == f"it-baseline-{gate['best_baseline']}"
        assert read_metadata(out / "models" / "mmoe" / served)["ordering"] == f"baseline:{gate['best_baseline']}"
    assert "publish gate:" in result.output

    train_two_tower(ctx.dataset, ctx.cutoff, paths.models_dir, "v1", epochs=1, progress=False)
    assert resolve_version(paths.models_dir, "two_tower") == "v1"
    methods = build_methods(ctx)
    assert set(methods) == {"pipeline"}
    customers = ctx.customers[:20]
    recs = methods["pipeline"](customers)
    assert set(recs) == set(customers)
    # The pipeline re-orders exactly the stage-one list /recommend would get (nothing cut, nothing added).
    from pipeline.evaluated_candidates import candidates_at

    listed = candidates_at(paths.models_dir / "two_tower" / "v1", ctx.dataset, ctx.cutoff, customers)
    for c in customers:
        mine = listed.article_id[listed.customer_id == c]
        assert len(recs[c]) == min(50, len(mine)) and set(recs[c]) <= set(mine)

    # Serve what we evaluate: the published models called as the /candidates and /rank routes
    # call them give every customer the pipeline's top 12.
    from pipeline.served import served_in_process

    feed = served_in_process(ctx)(customers)
    assert all(feed[c] == recs[c][:12] for c in customers)


@pytest.mark.slow
@pytest.mark.integration
def test_gate_keeps_a_passing_incumbent_and_force_publishes(tiny_world: Path, tmp_path: Path) -> None:
    from pipeline.cli import cli

    out = tmp_path / "out"
    base = [
        "train",
        "ranker",
        "--data-dir",
        str(tiny_world),
        "--output-dir",
        str(out),
        "--epochs",
        "1",
        "--two-tower-epochs",
        "1",
        "--no-single-task",
        "--train-weeks",
        "1",
    ]
    first = CliRunner().invoke(cli, [*base, "--model-version", "a", "--force"])
    assert first.exit_code == 0, first.output
    assert resolve_version(out / "models", "mmoe") == "a"
    assert read_metadata(out / "models" / "mmoe" / "a")["publish_gate"]["forced"] is True
    # A forced model did not pass its gate, so it is no incumbent to keep: a loser is replaced
    # by the baseline's order, a winner published.
    second = CliRunner().invoke(cli, [*base, "--model-version", "b"])
    assert second.exit_code == 0, second.output
    gate = read_metadata(out / "models" / "mmoe" / "b")["publish_gate"]
    assert gate["incumbent"] == "a"
    expected = "b" if gate["action"] == "publish" else f"b-baseline-{gate['best_baseline']}"
    assert gate["action"] in ("publish", "publish_baseline")
    assert resolve_version(out / "models", "mmoe") == expected
