"""``hmrec report --out DIR``: an HTML page with PNG plots of every number the product has.

    hmrec report --out output/report             # then open output/report/index.html
    hmrec report --out /tmp/r --no-evaluate       # never run the evaluation, only read its JSON

See pipeline/report.py for the sections and the files each one reads.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.options import path_options, paths_from


@click.command("report")
@path_options
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder to write index.html and its PNGs into (default: <output-dir>/report).",
)
@click.option(
    "--evaluate/--no-evaluate",
    "run_evaluation",
    default=True,
    show_default=True,
    help="Run the evaluation when <output-dir>/evaluation/metrics.json is missing.",
)
@click.option(
    "--search-json",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Output of `hmrec evaluate search --json` (default: looked for under <output-dir>).",
)
def report_command(
    data_dir: Path | None, output_dir: Path | None, out_dir: Path | None, run_evaluation: bool, search_json: Path | None
) -> None:
    """Write an HTML evaluation report (evaluation table, training curves, MMoE gates, search quality)."""
    from pipeline.report import build_report

    paths = paths_from(data_dir, output_dir)
    target = out_dir or paths.output_dir / "report"
    report = build_report(paths, target, run_evaluation=run_evaluation, search_json=search_json, echo=click.echo)
    for section in report.sections:
        click.echo(f"  {'MISSING' if section.missing else 'ok':<8} {section.title}")
    click.echo(f"wrote {report.index}")
