"""The evaluation framework: split, method discovery, leakage refusal, JSON and the CLI."""

from __future__ import annotations

import json
import types
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline import evaluation
from pipeline.cli import cli
from pipeline.evaluation import (
    EvalContext,
    LeakageError,
    check_model_cutoff,
    discover_methods,
    evaluate,
    format_table,
    make_context,
    write_json,
)
from shared.config import get_paths
from shared.data import Dataset

BASELINES = {"random", "popular", "age_popular", "repurchase_popular"}


def hand_made_dataset() -> Dataset:
    """Transactions 2020-09-01 .. 2020-09-22: default cutoff 2020-09-16 (22 - 6).

    Label week 09-16..09-22: c1 buys A and B, c2 buys C, c3 buys A (on the last day).
    History: c1 bought A on 09-15; c4 bought D on 09-01 and nothing after.
    """
    rows = [
        ("2020-09-01", "c4", "D"),
        ("2020-09-15", "c1", "A"),
        ("2020-09-16", "c1", "A"),
        ("2020-09-17", "c1", "B"),
        ("2020-09-18", "c2", "C"),
        ("2020-09-22", "c3", "A"),
    ]
    tx = pd.DataFrame(rows, columns=["t_dat", "customer_id", "article_id"])
    tx["t_dat"] = pd.to_datetime(tx["t_dat"])
    for col in ("customer_id", "article_id"):
        tx[col] = tx[col].astype("str")
    customers = pd.DataFrame(
        {
            "customer_id": pd.array(["c1", "c2", "c3", "c4"], dtype="str"),
            "age": np.array([22, 35, np.nan, 60], dtype="float32"),
        }
    )
    articles = pd.DataFrame({"article_id": pd.array(["A", "B", "C", "D"], dtype="str")})
    return Dataset(articles=articles, customers=customers, transactions=tx)


@pytest.fixture()
def ctx(tmp_path: Path) -> EvalContext:
    return make_context(hand_made_dataset(), get_paths(tmp_path / "data", tmp_path / "out"), k=12)


def fake_module(name: str, build) -> types.ModuleType:  # type: ignore[no-untyped-def]
    module = types.ModuleType(f"pipeline.methods.{name}")
    module.build_methods = build  # type: ignore[attr-defined]
    return module


def test_check_model_cutoff_refuses_models_that_saw_the_scored_week():
    eval_cutoff = date(2020, 9, 16)
    check_model_cutoff(date(2020, 9, 16), eval_cutoff, "two_tower v1")  # trained on days < 09-16: fine
    check_model_cutoff(date(2020, 9, 9), eval_cutoff, "two_tower v1")  # older model: fine
    with pytest.raises(LeakageError, match=r"two_tower v1 was trained on data up to 2020-09-17"):
        check_model_cutoff(date(2020, 9, 17), eval_cutoff, "two_tower v1")
    with pytest.raises(LeakageError, match=r"mmoe v2 was trained on all data \(cutoff none\)"):
        check_model_cutoff(None, eval_cutoff, "mmoe v2")


def test_context_splits_at_the_default_cutoff(ctx: EvalContext):
    assert ctx.cutoff == date(2020, 9, 16)
    # History is strictly before the cutoff: the 09-01 and 09-15 rows only.
    assert ctx.history["t_dat"].max() == pd.Timestamp("2020-09-15")
    assert len(ctx.history) == 2
    assert ctx.labels == {"c1": {"A", "B"}, "c2": {"C"}, "c3": {"A"}}
    assert ctx.customers == ["c1", "c2", "c3"]  # c4 bought nothing in the week: not scored


def test_context_with_an_explicit_cutoff_and_an_empty_week(tmp_path: Path):
    paths = get_paths(tmp_path, tmp_path)
    ctx = make_context(hand_made_dataset(), paths, cutoff=date(2020, 9, 18))
    # week 09-18..09-24: c2 buys C, c3 buys A
    assert ctx.labels == {"c2": {"C"}, "c3": {"A"}}
    with pytest.raises(ValueError, match="no purchases in the week starting 2020-10-01"):
        make_context(hand_made_dataset(), paths, cutoff=date(2020, 10, 1))


def test_the_methods_package_provides_the_four_baselines(ctx: EvalContext):
    found = discover_methods(ctx)
    assert BASELINES <= set(found.methods)


def test_evaluate_scores_methods_and_refuses_a_model_trained_on_the_scored_week(ctx: EvalContext):
    def good(c: EvalContext):  # type: ignore[no-untyped-def]
        # Everyone gets [A, C, B]. c1 {A, B}: (1/1 + 2/3) / 2 = 5/6; c2 {C}: 1/2; c3 {A}: 1
        # MAP@12 = (5/6 + 1/2 + 1) / 3 = 7/9. recall@12 = 1 for all.
        return {"always_acb": lambda customers: {x: ["A", "C", "B"] for x in customers}}

    def leaky(c: EvalContext):  # type: ignore[no-untyped-def]
        check_model_cutoff(None, c.cutoff, "leaky_model v1")
        return {"leaky": lambda customers: {}}  # pragma: no cover - never reached

    def broken(c: EvalContext):  # type: ignore[no-untyped-def]
        raise RuntimeError("artifact is corrupt")

    modules = [
        fake_module("good", good),
        fake_module("leaky", leaky),
        fake_module("broken", broken),
        fake_module("empty", lambda c: {}),
    ]
    result = evaluate(ctx, modules=modules)
    assert set(result.metrics) == {"always_acb"}
    assert result.metrics["always_acb"]["map@12"] == pytest.approx(7 / 9)
    assert result.metrics["always_acb"]["recall@12"] == pytest.approx(1.0)
    assert "leaky_model v1 was trained on all data" in result.refused["leaky"]
    assert result.errors == {"broken": "RuntimeError: artifact is corrupt"}
    table = format_table(result)
    assert "always_acb" in table and "refused leaky:" in table and "error broken:" in table


def test_a_method_refusing_at_call_time_is_refused_not_scored(ctx: EvalContext):
    def late(c: EvalContext):  # type: ignore[no-untyped-def]
        def predict(customers: list[str]) -> dict[str, list[str]]:
            check_model_cutoff(date(2020, 9, 20), c.cutoff, "late_model")
            return {}

        return {"late": predict}

    result = evaluate(ctx, modules=[fake_module("late", late)])
    assert result.metrics == {}
    assert "late_model was trained on data up to 2020-09-20" in result.refused["late"]


def test_only_selects_methods_and_rejects_unknown_names(ctx: EvalContext):
    result = evaluate(ctx, only=["popular"])
    assert set(result.metrics) == {"popular"}
    with pytest.raises(KeyError, match="unknown or unavailable method.*nope"):
        evaluate(ctx, only=["nope"])


def test_baselines_on_the_hand_made_week(ctx: EvalContext):
    result = evaluate(ctx, only=["popular", "repurchase_popular"])
    # History's last week (09-09..09-15) sold only A; the list continues with D (all-time).
    # popular = [A, D]: c1 {A, B}: (1/1) / 2 = 1/2; c2: 0; c3 {A}: 1 -> MAP = 1.5 / 3 = 1/2
    assert result.metrics["popular"]["map@12"] == pytest.approx(0.5)
    # repurchase: c1 bought A on 09-15 -> [A, D], same as popular here -> 1/2
    assert result.metrics["repurchase_popular"]["map@12"] == pytest.approx(0.5)


def test_json_shape(ctx: EvalContext, tmp_path: Path):
    result = evaluate(ctx, only=["popular", "random"])
    path = tmp_path / "nested" / "metrics.json"
    write_json(result, path)
    data = json.loads(path.read_text())
    assert data["cutoff"] == "2020-09-16"
    assert data["customers_evaluated"] == 3
    assert set(data["metrics"]) == {"popular", "random"}
    for metrics in data["metrics"].values():
        assert set(metrics) == {"map@12", "recall@12", "recall@100", "recall@500"}
        assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert data["refused"] == {}


@pytest.mark.slow
def test_cli_on_the_tiny_world(tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # A fake plug-in beside the real ones whose model trained on everything: refused in the JSON.
    real_modules = evaluation.method_modules()

    def leaky(c: EvalContext):  # type: ignore[no-untyped-def]
        check_model_cutoff(None, c.cutoff, "leaky v1")
        return {}

    monkeypatch.setattr(evaluation, "method_modules", lambda: [*real_modules, fake_module("leaky", leaky)])
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["evaluate", "--data-dir", str(tiny_world), "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "repurchase_popular" in result.output and "refused leaky: leaky v1" in result.output

    data = json.loads((out / "evaluation" / "metrics.json").read_text())
    tx = pd.read_csv(tiny_world / "transactions_train.csv", usecols=["t_dat", "customer_id"])
    last = pd.Timestamp(tx["t_dat"].max())
    cutoff = last - pd.Timedelta(days=6)
    assert data["cutoff"] == f"{cutoff:%Y-%m-%d}"
    in_week = tx[pd.to_datetime(tx["t_dat"]) >= cutoff]
    assert data["customers_evaluated"] == in_week["customer_id"].nunique() > 0
    assert BASELINES <= set(data["metrics"])
    assert "leaky" in data["refused"]
    assert (out / "evaluation" / "metrics.png").exists()
    # Any popularity signal beats random on a world built with popular articles.
    assert data["metrics"]["popular"]["map@12"] > data["metrics"]["random"]["map@12"]

    explicit = tmp_path / "m.json"
    again = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "--data-dir",
            str(tiny_world),
            "--output-dir",
            str(out),
            "--methods",
            "popular",
            "--json",
            str(explicit),
            "--cutoff",
            f"{cutoff - pd.Timedelta(days=7):%Y-%m-%d}",
        ],
    )
    assert again.exit_code == 0, again.output
    earlier = json.loads(explicit.read_text())
    assert set(earlier["metrics"]) == {"popular"}
    assert earlier["cutoff"] == f"{cutoff - pd.Timedelta(days=7):%Y-%m-%d}"


def test_cli_rejects_bad_options(tmp_path: Path):
    runner = CliRunner()
    none = runner.invoke(cli, ["evaluate", "--data-dir", str(tmp_path), "--cutoff", "none"])
    assert none.exit_code == 2 and "evaluation needs a held-out week" in none.output
    bad = runner.invoke(cli, ["evaluate", "--data-dir", str(tmp_path), "--cutoff", "16/09/2020"])
    assert bad.exit_code == 2 and "expected YYYY-MM-DD" in bad.output
    missing = runner.invoke(
        cli, ["evaluate", "--data-dir", str(tmp_path / "nothing"), "--output-dir", str(tmp_path / "out")]
    )
    assert missing.exit_code == 1 and "Error:" in missing.output


def test_evaluate_group_runs_a_subcommand_without_the_default_action(tmp_path: Path, monkeypatch):
    # `hmrec evaluate search` belongs to another module; a subcommand must run alone, and bare
    # `evaluate` must still evaluate.
    import click

    from pipeline.commands.evaluate import evaluate_group

    root = click.Group("root")
    root.add_command(evaluate_group)

    @click.command("search")
    def search() -> None:
        click.echo("search evaluated")

    monkeypatch.setitem(evaluate_group.commands, "search", search)
    runner = CliRunner()
    sub = runner.invoke(root, ["evaluate", "--data-dir", str(tmp_path / "nothing"), "search"])
    assert sub.exit_code == 0, sub.output
    assert sub.output == "search evaluated\n"
    bare = runner.invoke(root, ["evaluate", "--data-dir", str(tmp_path / "nothing")])
    assert bare.exit_code == 1 and "Error:" in bare.output  # it tried to load the (missing) data


def test_method_modules_name_every_family_in_the_methods_folder():
    """The list is explicit, so a new ``pipeline/methods/<family>.py`` must be added to it to be scored."""
    from pipeline.methods import METHOD_MODULES

    folder = Path(evaluation.__file__).parent / "methods"
    on_disk = sorted(f"pipeline.methods.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__")
    assert sorted(METHOD_MODULES) == on_disk
    assert [m.__name__ for m in evaluation.method_modules()] == list(METHOD_MODULES)
