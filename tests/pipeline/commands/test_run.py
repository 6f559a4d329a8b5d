"""`hmrec run`'s command line: the flags, their help, and those that exclude each other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

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
