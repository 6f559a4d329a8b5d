"""`hmrec run`'s command: the offline steps it runs, its flags, their help, and those that exclude each other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from pipeline.commands import run as run_module
from shared.config import PathSettings

ROOT = Path(__file__).resolve().parents[3]


def test_flags_that_exclude_each_other():
    from pipeline.cli import cli

    result = CliRunner().invoke(cli, ["run", "--skip-pipeline", "--pipeline-only"])
    assert result.exit_code == 2 and "exclude each other" in result.output


def test_run_help_lists_the_flags():
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0
    for flag in ("--skip-pipeline", "--services-only", "--pipeline-only", "--full-first", "--port", "--scale"):
        assert flag in out.stdout


def _data(tmp_path: Path) -> PathSettings:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("articles.csv", "transactions_train.csv"):
        (data / name).write_text("x\n")
    return PathSettings(data_dir=data, output_dir=tmp_path / "output")


def test_prepare_runs_only_missing_steps_in_order(tmp_path, monkeypatch):
    paths = _data(tmp_path)
    # the inference file and a text-only search index exist; models and the re-ranked file do not
    (paths.inference_dir).mkdir(parents=True)
    (paths.inference_dir / "inference_results.parquet").write_bytes(b"")
    paths.search_dir.mkdir(parents=True)
    (paths.search_dir / "manifest.json").write_text('{"version": "s1"}')
    ran: list[list[str]] = []
    monkeypatch.setattr(run_module, "_run_step", lambda args, env, label: ran.append(args))
    run_module.prepare(paths, "small", {})
    assert ran == [["index", "images"], ["train", "candidate"], ["train", "ranker"], ["rerank"]]


def test_prepare_synthesises_data_when_the_folder_is_empty(tmp_path, monkeypatch):
    paths = PathSettings(data_dir=tmp_path / "data", output_dir=tmp_path / "output")
    ran: list[list[str]] = []
    monkeypatch.setattr(run_module, "_run_step", lambda args, env, label: ran.append(args))
    monkeypatch.setattr(run_module, "FULL_QUALITY", [])
    run_module.prepare(paths, "tiny", {})
    assert ran == [["data", "synth", "--scale", "tiny", "--out", str(tmp_path / "data")]]
