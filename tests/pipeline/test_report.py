"""`hmrec report`: the page shows the numbers it reads, draws the PNGs, and says what is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.report import build_report
from shared.artifacts import atomic_model_dir, publish
from shared.config import get_paths

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _metrics(out: Path) -> None:
    (out / "evaluation").mkdir(parents=True)
    (out / "evaluation" / "metrics.json").write_text(
        json.dumps(
            {
                "cutoff": "2020-09-16",
                "customers_evaluated": 1234,
                "metrics": {
                    "popular": {"map@12": 0.0123, "recall@12": 0.0456, "recall@100": 0.25, "recall@500": 0.5},
                    "pipeline": {"map@12": 0.0321, "recall@12": 0.0654, "recall@100": 0.3125, "recall@500": 0.3125},
                    "<b>odd</b>": {"map@12": 0.0, "recall@12": 0.0, "recall@100": 0.0, "recall@500": 0.0},
                },
                "refused": {"two_tower": "trained on 2020-09-20, after the cutoff"},
                "comparisons": {"pipeline/best_baseline": {"ratio": 2.6098, "low": 2.125, "high": 3.1875}},
            }
        )
    )


def _models(out: Path) -> None:
    models = out / "models"
    with atomic_model_dir(
        models, "two_tower", "v7", {"cutoff": "2020-09-16", "metrics": {"best_epoch": 2}, "config": {"val_k": 100}}
    ) as tmp:
        (tmp / "history.json").write_text(
            json.dumps({"loss": [3.5, 2.25], "val_recall": [0.125, 0.375], "epoch_seconds": [1.0, 1.0]})
        )
    with atomic_model_dir(models, "two_tower", "v8-unpublished", {"cutoff": "2020-09-16"}) as tmp:
        (tmp / "history.json").write_text(json.dumps({"loss": [9.875], "val_recall": []}))
    publish(models, "two_tower", "v7")  # the served one, not the newest
    meta = {
        "cutoff": "2020-09-16",
        "best_epoch": 2,
        "tasks": ["purchase", "online"],
        "score_weights": {"purchase": 1.0, "online": 0.5},
        # purchase leans on e0, online on e1 -> top experts e0 / e1
        "gate_usage": {"purchase": [0.7, 0.3], "online": [0.25, 0.75]},
        "metrics": {"val_map12": 0.0875, "val_map12_two_tower_order": 0.0625},
    }
    with atomic_model_dir(models, "mmoe", "v2", meta) as tmp:
        (tmp / "history.json").write_text(
            json.dumps(
                [
                    {
                        "epoch": 1,
                        "loss": 0.8125,
                        "val_auc_purchase": 0.6125,
                        "val_auc_online": 0.55,
                        "val_rmse_revenue": 0.5,
                        "val_map12": 0.0725,
                        "seconds": 2.0,
                    },
                    {
                        "epoch": 2,
                        "loss": 0.6875,
                        "val_auc_purchase": 0.6375,
                        "val_auc_online": 0.5625,
                        "val_rmse_revenue": 0.45,
                        "val_map12": 0.0775,
                        "seconds": 2.0,
                    },
                ]
            )
        )
    publish(models, "mmoe", "v2")


def _search(out: Path) -> None:
    (out / "evaluation" / "search.json").write_text(
        json.dumps(
            {
                "image": {
                    "embedder": {"p@10_product_group": 0.4125, "p@10_colour_group": 0.2375},
                    "default": {"p@10_product_group": 0.6625, "p@10_colour_group": 0.5875},
                },
                "text": {
                    "tfidf": {"p@12": 0.8125, "ms_per_query": 1.5},
                    "hybrid": {"p@12": 0.8375, "ms_per_query": 9.25},
                },
                "meta": {"articles": 1500, "data_dir": "hm_sample"},
            }
        )
    )


def test_report_shows_every_number_it_reads_and_draws_the_plots(tmp_path: Path):
    out = tmp_path / "output"
    _metrics(out)
    _models(out)
    _search(out)
    report = build_report(get_paths(tmp_path / "data", out), tmp_path / "report", run_evaluation=False)

    page = report.index.read_text()
    assert not [s.title for s in report.sections if s.missing]
    # evaluation table, 4 decimals; best MAP@12 first (pipeline 0.0321 before popular 0.0123)
    for number in ("0.0123", "0.0456", "0.2500", "0.5000", "0.0321", "0.0654", "0.3125", "1,234", "2020-09-16"):
        assert number in page, number
    assert page.index("<td>pipeline</td>") < page.index("<td>popular</td>")
    assert "trained on 2020-09-20, after the cutoff" in page  # refused methods are shown, not scored
    assert "pipeline/best_baseline" in page and "2.610" in page and "2.125 – 3.188" in page  # the ratio interval
    assert "&lt;b&gt;odd&lt;/b&gt;" in page and "<b>odd</b>" not in page  # names are escaped
    # two-tower: the CURRENT version (v7), not the newest folder
    assert "v7" in page and "3.5000" in page and "2.2500" in page and "0.3750" in page
    assert "9.8750" not in page and "v8-unpublished" not in page
    assert "recall@100" in page  # val_k from the model's config
    # MMoE curves and gates
    for number in ("0.8125", "0.6875", "0.6375", "0.5625", "0.0775", "0.0875", "0.0625"):
        assert number in page, number
    gates = page[page.index("MMoE gate usage") :]
    assert "0.7000" in gates and "0.7500" in gates and "0.5000" in gates  # uniform over 2 experts = 0.5
    assert "<td>purchase</td><td>0.7000</td><td>0.3000</td><td>e0</td>" in gates
    assert "<td>online</td><td>0.2500</td><td>0.7500</td><td>e1</td>" in gates
    # search
    for number in ("0.4125", "0.2375", "0.6625", "0.5875", "0.8125", "0.8375", "9.25"):
        assert number in page, number

    pngs = {"evaluation.png", "two_tower_curves.png", "mmoe_curves.png", "mmoe_gates.png", "search_quality.png"}
    assert {p.name for p in report.out_dir.glob("*.png")} == pngs
    for name in pngs:
        assert (report.out_dir / name).read_bytes()[:8] == PNG_MAGIC
        assert f'src="{name}"' in page  # relative links: the folder is self-contained


def test_missing_inputs_are_named_with_the_command_that_makes_them(tmp_path: Path):
    out = tmp_path / "output"
    out.mkdir()
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    (report_dir / "evaluation.png").write_bytes(PNG_MAGIC)  # a stale plot from an earlier report
    report = build_report(get_paths(tmp_path / "data", out), report_dir, run_evaluation=False)

    assert all(s.missing for s in report.sections)
    page = report.index.read_text()
    for command in ("hmrec evaluate", "hmrec train candidate", "hmrec train ranker", "hmrec evaluate search"):
        assert f"<code>{command}" in page, command
    assert str(out / "evaluation" / "metrics.json") in page
    assert "<table>" not in page and "<img" not in page  # no numbers, no plots made up
    assert not list(report_dir.glob("*.png"))


def test_cli_runs_the_evaluation_when_its_json_is_missing(tiny_world: Path, tmp_path: Path):
    out = tmp_path / "output"
    result = CliRunner().invoke(
        cli, ["report", "--data-dir", str(tiny_world), "--output-dir", str(out), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    written = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert {"random", "popular", "age_popular", "repurchase_popular"} <= set(written["metrics"])
    page = (tmp_path / "r" / "index.html").read_text()
    popular = written["metrics"]["popular"]["map@12"]
    assert f"{popular:.4f}" in page
    assert (tmp_path / "r" / "evaluation.png").exists()
    assert "MISSING  Training curves: two-tower" in result.output  # no models in this output dir


@pytest.mark.parametrize("bad", ["{not json", json.dumps({"meta": {}})])
def test_a_broken_or_empty_json_is_reported_missing_not_fatal(tmp_path: Path, bad: str):
    out = tmp_path / "output"
    (out / "evaluation").mkdir(parents=True)
    (out / "search_eval.json").write_text(bad)
    (out / "evaluation" / "metrics.json").write_text(bad)
    report = build_report(get_paths(tmp_path / "d", out), tmp_path / "r", run_evaluation=False)
    evaluation, search = report.sections[0], report.sections[-1]
    assert search.missing and "search_eval.json" in search.body
    assert "hmrec evaluate" in evaluation.body and "<table>" not in evaluation.body
