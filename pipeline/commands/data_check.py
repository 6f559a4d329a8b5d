"""``hmrec data check``: load and validate a data folder, print what is there and what is wrong."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.options import path_options, paths_from
from shared.data import DataValidationError, load_dataset


def summarise(data_dir: Path, cache_dir: Path | None) -> tuple[list[str], list[str]]:
    """(lines describing the data, problems found). Raises nothing for bad data: it reports it."""
    try:
        ds = load_dataset(data_dir, cache_dir)
    except (DataValidationError, FileNotFoundError) as exc:
        return [], [str(exc)]
    lines = [
        f"articles      {len(ds.articles):>12,}",
        f"customers     {len(ds.customers):>12,}",
        f"transactions  {len(ds.transactions):>12,}",
    ]
    problems: list[str] = []
    tx = ds.transactions
    if len(tx):
        lines.append(f"date range    {tx['t_dat'].min().date()} .. {tx['t_dat'].max().date()}")
        lines.append(f"buyers        {tx['customer_id'].nunique():>12,}")
        if len(ds.customers):
            unknown = ~tx["customer_id"].isin(ds.customers["customer_id"])
            if unknown.any():
                # Not an error (extracts are often cut independently), but worth knowing.
                problems.append(
                    f"warning: {unknown.mean():.1%} of transactions name customers absent "
                    f"from customers.csv (they are served as customers with unknown attributes)"
                )
        unknown_articles = ~tx["article_id"].isin(ds.articles["article_id"])
        if unknown_articles.any():
            problems.append(
                f"warning: {int(unknown_articles.sum()):,} transactions name articles absent from "
                "articles.csv (within tolerance)"
            )
    else:
        problems.append("warning: no transactions")
    return lines, problems


@click.command("check")
@path_options
def check_command(data_dir: Path | None, output_dir: Path | None) -> None:
    """Load and validate a data folder; print row counts, date range and problems."""
    paths = paths_from(data_dir, output_dir)
    lines, problems = summarise(paths.data_dir, paths.cache_dir)
    for line in lines:
        click.echo(line)
    for p in problems:
        click.echo(("" if p.startswith("warning") else "error: ") + p, err=True)
    if any(not p.startswith("warning") for p in problems):
        raise SystemExit(1)
    click.echo("ok")
