"""``hmrec train candidate`` (two-tower training) and ``hmrec infer`` (batch candidates)."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import click

from pipeline.groups import get_group
from pipeline.options import cutoff_option, parse_cutoff, path_options, paths_from

VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _version(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A version becomes a folder name: letters, digits, '.', '_', '-' only (no paths)."""
    if value is not None and not VERSION_PATTERN.match(value):
        raise click.BadParameter(f"{value!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    return value


def _default_version() -> str:
    return "v" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


@click.command("candidate")
@path_options
@cutoff_option
@click.option("--model-version", default=None, callback=_version,
              help="Version folder name (default: v<UTC timestamp>).")
@click.option("--epochs", type=click.IntRange(1, 200), default=None, help="Maximum epochs (early stopping).")
@click.option("--train-weeks", type=click.IntRange(1, 104), default=None, help="Weeks of purchases before the cutoff to learn from.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--publish/--no-publish", default=True, show_default=True,
              help="Point CURRENT at the new version (the service hot-swaps to it).")
def train_candidate_command(data_dir: Path | None, output_dir: Path | None, cutoff: str | None,
                            model_version: str | None, epochs: int | None, train_weeks: int | None,
                            seed: int, publish: bool) -> None:
    """Train the two-tower retrieval model; export to output/models/two_tower/<version>/."""
    import shared.config  # noqa: F401
    from services.candidate.settings import TrainConfig
    from services.candidate.train import train_two_tower
    from shared.data import DataValidationError, load_dataset
    from shared.split import default_cutoff

    paths = paths_from(data_dir, output_dir)
    try:
        dataset = load_dataset(paths.data_dir, paths.cache_dir)
    except (DataValidationError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    when = parse_cutoff(cutoff)
    cut = default_cutoff(dataset.transactions) if when == "default" else when
    cfg = TrainConfig(seed=seed)
    if train_weeks:
        cfg.train_weeks = train_weeks
    click.echo(f"two-tower: training strictly before {cut or 'the end (all data)'}")
    try:
        folder = train_two_tower(dataset, cut, paths.models_dir, model_version or _default_version(),  # type: ignore[arg-type]
                                 epochs=epochs, seed=seed, config=cfg, publish_model=publish)
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


@click.command("infer")
@path_options
@click.option("--model-version", default=None, callback=_version, help="Two-tower version (default: CURRENT).")
@click.option("--threshold", type=click.FloatRange(-1.0, 1.0), default=0.3, show_default=True,
              help="Keep candidates whose cosine score is >= this.")
@click.option("--no-threshold", is_flag=True, help="Plain top-k, no threshold.")
@click.option("--top-k", type=click.IntRange(1, 200_000), default=200, show_default=True,
              help="At most this many candidates per customer.")
@click.option("--fallback-k", type=click.IntRange(1, 10_000), default=12, show_default=True,
              help="Candidates kept for a customer with nothing above the threshold.")
@click.option("--customer-id", "customer_ids", multiple=True, help="Only these customers (repeatable).")
@click.option("--cutoff", default=None, help="Features as of this day (YYYY-MM-DD); default: the model's cutoff.")
@click.option("--not-sold-weeks", type=click.IntRange(0, 520), default=8, show_default=True,
              help="Drop articles not sold in this many weeks (0: rule off).")
@click.option("--price-band/--no-price-band", default=False, show_default=True,
              help="Keep articles within the customer's own price band.")
@click.option("--exclude-article", multiple=True, help="Article id never to propose (repeatable).")
@click.option("--exclude", "exclude_attrs", multiple=True, help="COLUMN=VALUE, e.g. index_name=Baby Sizes 50-98.")
@click.option("--chunk-size", type=click.IntRange(1, 100_000), default=1024, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Default: <output-dir>/inference/inference_results.parquet")
def infer_command(data_dir: Path | None, output_dir: Path | None, model_version: str | None, threshold: float,
                  no_threshold: bool, top_k: int, fallback_k: int, customer_ids: tuple[str, ...],
                  cutoff: str | None, not_sold_weeks: int, price_band: bool, exclude_article: tuple[str, ...],
                  exclude_attrs: tuple[str, ...], chunk_size: int, out: Path | None) -> None:
    """Batch candidates for every customer (or --customer-id ...) with the two-tower model."""
    import shared.config  # noqa: F401
    from services.candidate.infer import CutoffError, run_batch_inference
    from services.candidate.settings import MODEL_NAME, FilterConfig
    from shared.artifacts import ArtifactError, model_dir
    from shared.data import DataValidationError, load_dataset

    paths = paths_from(data_dir, output_dir)
    try:
        folder = model_dir(paths.models_dir, MODEL_NAME, model_version)
        dataset = load_dataset(paths.data_dir, paths.cache_dir)
    except (ArtifactError, DataValidationError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    when = None
    if cutoff:
        try:
            when = datetime.strptime(cutoff, "%Y-%m-%d").date()
        except ValueError as exc:
            raise click.BadParameter(f"expected YYYY-MM-DD, got {cutoff!r}", param_hint="--cutoff") from exc
    filters = FilterConfig(not_sold_weeks=not_sold_weeks or None, price_band=price_band,
                           exclude_article_ids=list(exclude_article), exclude_attributes=_parse_exclusions(exclude_attrs))
    target = out or paths.inference_dir / "inference_results.parquet"
    click.echo(f"infer: two-tower {folder.name}, threshold {'none' if no_threshold else threshold}, top-k {top_k}")
    try:
        stats = run_batch_inference(folder, dataset, target, cutoff=when, customer_ids=list(customer_ids) or None,
                                    top_k=top_k, threshold=None if no_threshold else threshold, filters=filters,
                                    fallback_k=fallback_k, chunk_size=chunk_size)
    except (CutoffError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"infer: {stats.summary()}")
    click.echo(f"infer: {stats.hit_cap:,} customers hit the top-k cap of {top_k}; "
               f"{stats.fell_back:,} fell back to their best {fallback_k} (nothing >= threshold)")
    click.echo(f"infer: wrote {target}")


def register(cli: click.Group) -> None:
    get_group(cli, "train", help="Train models.").add_command(train_candidate_command)
    cli.add_command(infer_command)

