"""``hmrec train candidate`` / ``hmrec infer`` on `tiny`."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from shared.contract.schemas import CANDIDATE_SOURCES

pytestmark = pytest.mark.slow


@pytest.fixture
def output_dir(trained, tmp_path):
    out = tmp_path / "output"
    shutil.copytree(trained, out / "models")
    return out


def test_train_command_writes_a_published_version(tiny_world, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(
        cli,
        [
            "train",
            "candidate",
            "--data-dir",
            str(tiny_world),
            "--output-dir",
            str(out),
            "--model-version",
            "cli1",
            "--epochs",
            "1",
            "--train-weeks",
            "4",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (out / "models" / "two_tower" / "CURRENT").read_text().strip() == "cli1"
    assert "strictly before" in r.output


def test_infer_command_writes_stage_one_with_top_k(tiny_world, output_dir):
    r = CliRunner().invoke(
        cli,
        [
            "infer",
            "--data-dir",
            str(tiny_world),
            "--output-dir",
            str(output_dir),
            "--top-k",
            "7",
            "--not-sold-weeks",
            "0",
        ],
    )
    assert r.exit_code == 0, r.output
    frame = pd.read_parquet(output_dir / "inference" / "inference_results.parquet")
    assert list(frame.columns)[:5] == ["customer_id", "article_id", "score", "rank", "source"]
    assert set(frame.columns) >= {f"src_{s}" for s in CANDIDATE_SOURCES}
    # the two-tower source: exactly 7 per customer (no threshold, every article allowed)
    per = frame.groupby("customer_id")
    assert per["src_two_tower"].apply(lambda s: (s > 0).sum()).eq(7).all()
    # every customer gets the best sellers at least, ranks 1..n in stage-one order
    assert per["src_popular"].apply(lambda s: (s > 0).sum()).eq(12).all()
    assert per["rank"].min().eq(1).all() and (per["rank"].max() == per.size()).all()
    assert set(frame["source"]) <= set(CANDIDATE_SOURCES)


def test_infer_threshold_cuts_the_two_tower_source_only(tiny_world, output_dir):
    """--threshold keeps two-tower candidates at or above it (set here at the median cosine)."""
    base = ["infer", "--data-dir", str(tiny_world), "--output-dir", str(output_dir), "--top-k", "20"]
    assert CliRunner().invoke(cli, base).exit_code == 0
    plain = pd.read_parquet(output_dir / "inference" / "inference_results.parquet")
    median = float(plain.loc[plain["src_two_tower"] > 0, "src_two_tower"].median())
    r = CliRunner().invoke(cli, [*base, "--threshold", f"{median:.4f}"])
    assert r.exit_code == 0, r.output
    cut = pd.read_parquet(output_dir / "inference" / "inference_results.parquet")
    tt = cut[cut["src_two_tower"] > 0]
    assert (tt["src_two_tower"] >= round(median, 4) - 1e-6).all()
    assert 0 < len(tt) < (plain["src_two_tower"] > 0).sum()
    # the other sources do not depend on the threshold
    others = [c for c in cut.columns if c.startswith("src_") and c != "src_two_tower"]
    assert (cut[others] > 0).sum().tolist() == (plain[others] > 0).sum().tolist()


def test_infer_for_some_customers_only(tiny_world, output_dir, tiny_dataset):
    some = sorted(tiny_dataset.customers["customer_id"].astype(str))[:3]
    args = ["infer", "--data-dir", str(tiny_world), "--output-dir", str(output_dir), "--top-k", "4"]
    for c in some:
        args += ["--customer-id", c]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    frame = pd.read_parquet(output_dir / "inference" / "inference_results.parquet")
    assert sorted(frame["customer_id"].unique()) == some
    assert frame.groupby("customer_id")["src_two_tower"].apply(lambda s: (s > 0).sum()).eq(4).all()


def test_infer_refuses_a_leaky_cutoff_and_bad_exclusions(tiny_world, output_dir, tiny_cutoff):
    base = ["infer", "--data-dir", str(tiny_world), "--output-dir", str(output_dir)]
    r = CliRunner().invoke(cli, [*base, "--cutoff", (tiny_cutoff - timedelta(days=7)).isoformat()])
    assert r.exit_code != 0 and "leak" in r.output
    r = CliRunner().invoke(cli, [*base, "--exclude", "no-equals-sign"])
    assert r.exit_code != 0 and "COLUMN=VALUE" in r.output


@pytest.mark.parametrize("version", ["../escape", ".hidden", "a/b", ""])
def test_model_version_must_be_a_plain_folder_name(version, tmp_path):
    r = CliRunner().invoke(cli, ["train", "candidate", "--data-dir", str(tmp_path), "--model-version", version])
    assert r.exit_code == 2 and "--model-version" in r.output
