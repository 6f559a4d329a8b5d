"""``hmrec train candidate`` (two-tower training) and ``hmrec infer`` (batch candidates)."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from pipeline.options import cutoff_option, parse_cutoff, path_options, paths_from

VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _version(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A version becomes a folder name: letters, digits, '.', '_', '-' only (no paths)."""
    if value is not None and not VERSION_PATTERN.match(value):
        raise click.BadParameter(f"{value!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    return value


@click.command("candidate")
@path_options
@cutoff_option
@click.option(
    "--model-version", default=None, callback=_version, help="Version folder name (default: v<UTC timestamp>)."
)
@click.option("--epochs", type=click.IntRange(1, 200), default=None, help="Maximum epochs (early stopping).")
@click.option(
    "--train-weeks",
    type=click.IntRange(1, 104),
    default=None,
    help="Weeks of purchases before the cutoff to learn from.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--publish/--no-publish",
    default=True,
    show_default=True,
    help="Point CURRENT at the new version (the service hot-swaps to it).",
)
def train_candidate_command(
    data_dir: Path | None,
    output_dir: Path | None,
    cutoff: str | None,
    model_version: str | None,
    epochs: int | None,
    train_weeks: int | None,
    seed: int,
    publish: bool,
) -> None:
    """Train the two-tower retrieval model; export to output/models/two_tower/<version>/."""
    from services.candidate import TwoTowerTrainConfig, train_two_tower
    from shared.artifacts import new_version
    from shared.data import DataValidationError, load_dataset
    from shared.split import default_cutoff

    paths = paths_from(data_dir, output_dir)
    try:
        dataset = load_dataset(paths.data_dir, paths.cache_dir)
    except (DataValidationError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    when = parse_cutoff(cutoff)
    cut = default_cutoff(dataset.transactions) if when == "default" else when
    cfg = TwoTowerTrainConfig(seed=seed)
    if train_weeks:
        cfg.train_weeks = train_weeks
    click.echo(f"two-tower: training strictly before {cut or 'the end (all data)'}")
    try:
        folder = train_two_tower(
            dataset,
            cut,  # type: ignore[arg-type]
            paths.models_dir,
            model_version or new_version(),
            epochs=epochs,
            seed=seed,
            config=cfg,
            publish_model=publish,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"two-tower: wrote {folder}")


def _parse_exclusions(values: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in values:
        col, sep, val = v.partition("=")
        if not sep or not col or not val:
            raise click.BadParameter(f"expected COLUMN=VALUE, got {v!r}", param_hint="--exclude")
        out.setdefault(col, []).append(val)
    return out


def _parse_day(cutoff: str | None) -> date | None:
    """``infer --cutoff``: a day (YYYY-MM-DD), or None for the model's cutoff."""
    if not cutoff:
        return None
    try:
        return datetime.strptime(cutoff, "%Y-%m-%d").date()
    except ValueError as exc:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {cutoff!r}", param_hint="--cutoff") from exc


def _stage_one_config(model: Any, threshold: float | None, top_k: int | None, not_sold_weeks: int | None) -> Any:
    """The model's own stage-one settings, with the command line's threshold, top-k and weeks."""
    from dataclasses import replace

    from services.candidate import StageOneConfig

    config = StageOneConfig.from_dict(model.metadata.get("stage_one"))
    return replace(
        config,
        threshold=threshold,
        two_tower_k=top_k or config.two_tower_k,
        not_sold_weeks=config.not_sold_weeks if not_sold_weeks is None else not_sold_weeks,
    )


@click.command("infer")
@path_options
@click.option("--model-version", default=None, callback=_version, help="Two-tower version (default: CURRENT).")
@click.option(
    "--threshold",
    type=click.FloatRange(-1.0, 1.0),
    default=None,
    help="Keep two-tower candidates whose cosine is >= this (default: none, plain top-k; "
    "a 0.3 threshold left most real customers without two-tower candidates).",
)
@click.option(
    "--top-k",
    type=click.IntRange(1, 5000),
    default=None,
    help="Two-tower candidates per customer (default: the model's stage-one setting, 100).",
)
@click.option("--customer-id", "customer_ids", multiple=True, help="Only these customers (repeatable).")
@click.option("--cutoff", default=None, help="Features as of this day (YYYY-MM-DD); default: the model's cutoff.")
@click.option(
    "--not-sold-weeks",
    type=click.IntRange(0, 520),
    default=None,
    help="Two-tower and other colours: only articles sold in this many weeks (default: the model's, 8).",
)
@click.option("--exclude-article", multiple=True, help="Article id never to propose (repeatable).")
@click.option("--exclude", "exclude_attrs", multiple=True, help="COLUMN=VALUE, e.g. index_name=Baby Sizes 50-98.")
@click.option("--chunk-size", type=click.IntRange(1, 100_000), default=2048, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Default: <output-dir>/inference/inference_results.parquet",
)
def infer_command(
    data_dir: Path | None,
    output_dir: Path | None,
    model_version: str | None,
    threshold: float | None,
    top_k: int | None,
    customer_ids: tuple[str, ...],
    cutoff: str | None,
    not_sold_weeks: int | None,
    exclude_article: tuple[str, ...],
    exclude_attrs: tuple[str, ...],
    chunk_size: int,
    out: Path | None,
) -> None:
    """Stage one for every customer (or --customer-id ...): two-tower, repurchase, co-purchase,
    other colours, trending and best sellers, tagged by source."""
    from services.candidate import MODEL_NAME, CutoffError, load_two_tower, write_stage_one
    from shared.artifacts import ArtifactError, model_dir
    from shared.data import DataValidationError, load_dataset

    paths = paths_from(data_dir, output_dir)
    try:
        folder = model_dir(paths.models_dir, MODEL_NAME, model_version)
        dataset = load_dataset(paths.data_dir, paths.cache_dir)
    except (ArtifactError, DataValidationError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    when = _parse_day(cutoff)
    model = load_two_tower(folder)
    config = _stage_one_config(model, threshold, top_k, not_sold_weeks)
    target = out or paths.inference_dir / "inference_results.parquet"
    click.echo(
        f"infer: two-tower {folder.name}, threshold {threshold if threshold is not None else 'none'}, "
        f"two-tower top-k {config.two_tower_k}, stage one {config.to_dict()}"
    )
    try:
        stats = write_stage_one(
            model,
            dataset,
            target,
            cutoff=when,
            customer_ids=list(customer_ids) or None,
            config=config,
            exclude_article_ids=list(exclude_article),
            exclude_attributes=_parse_exclusions(exclude_attrs),
            chunk_size=chunk_size,
        )
    except (CutoffError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"infer: {stats.summary()}")
    click.echo(f"infer: wrote {target}")
