"""``hmrec data synth`` (write a synthetic H&M world) and ``hmrec data stats`` (describe a world)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from pipeline.data_stats import format_table, world_stats
from pipeline.options import paths_from
from pipeline.synthetic import SCALES, generate_world
from shared.data import DataValidationError, load_dataset


@click.command("synth")
@click.option(
    "--scale",
    type=click.Choice(list(SCALES)),
    default="small",
    show_default=True,
    help="tiny (tests), sparse (1,500 customers' complete histories, like a customer-sampled "
    "extract), small (demo), medium (a tenth of kaggle), kaggle (full size).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder to write (default: $HM_DATA_DIR or data/).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--images/--no-images", default=True, show_default=True, help="Also write product photos.")
def synth_command(scale: str, out_dir: Path | None, seed: int, images: bool) -> None:
    """Write a synthetic H&M world (articles, customers, transactions, images)."""
    target = out_dir if out_dir is not None else paths_from(None, None).data_dir
    spec = SCALES[scale]
    click.echo(
        f"synthesising {scale}: {spec.n_articles:,} articles, {spec.n_customers:,} customers, "
        f"{spec.n_transactions:,} transactions -> {target}"
    )
    started = time.perf_counter()
    generate_world(target, scale=scale, seed=seed, images=images)
    click.echo(f"done in {time.perf_counter() - started:.1f}s")


@click.command("stats")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder with the three CSVs (default: $HM_DATA_DIR or data/).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the figures as JSON here.",
)
def stats_command(data_dir: Path | None, json_path: Path | None) -> None:
    """Print the statistics that describe a world, beside the real H&M figures."""
    paths = paths_from(data_dir, None)
    try:
        ds = load_dataset(paths.data_dir)
    except (DataValidationError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    figures = world_stats(ds.transactions, ds.customers, ds.articles)
    click.echo(format_table(figures))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(figures, indent=2))
        click.echo(f"wrote {json_path}")
