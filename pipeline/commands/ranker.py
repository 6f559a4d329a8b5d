"""``hmrec train ranker``, ``hmrec rerank`` and ``hmrec explain ranker``.

Training composes the two stages (only the pipeline may import both services):

1. the ranker's label week is the week *before* the evaluation cutoff (``--train-weeks N``:
   the N weeks before it), so the evaluated week stays unseen; each week's candidates must
   come from a two-tower model trained strictly before that week (otherwise the two-tower score feature would be fitted on the labels).
   That model is trained here (or reused) as ``two_tower/ranker-train-<date>``, never
   published and exported for batch stage one only, so the candidate service keeps serving its
   own model;
2. candidates for that week's buyers (stage one as of that week: services/candidate/stage_one.py
   through pipeline/evaluated_candidates.py, the same lists ``/recommend`` serves), features, labels -> MMoE
   and the single-task ablation;
3. the exported ranker carries a feature store built strictly before the cutoff.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click

from pipeline.options import cutoff_option, parse_cutoff, path_options, paths_from


def week_two_tower_dir(models_dir: Path, cutoff: date) -> Path:
    return Path(models_dir) / "two_tower" / f"ranker-train-{cutoff.isoformat()}"


def training_two_tower(dataset, cutoff: date, models_dir: Path, epochs: int | None, echo) -> Path:  # type: ignore[no-untyped-def]
    """A two-tower trained strictly before ``cutoff`` (the ranker's training week); reused if present."""
    from services.candidate import train_two_tower
    from shared.artifacts import read_metadata

    folder = week_two_tower_dir(models_dir, cutoff)
    version = folder.name
    if (folder / "metadata.json").exists() and read_metadata(folder).get("cutoff") == cutoff.isoformat():
        from services.candidate import load_two_tower

        try:  # an artifact of an older two-tower code version may no longer load: then retrain it
            load_two_tower(folder, warm=False)
            echo(f"ranker: reusing {folder} for the training week's candidates")
            return folder
        except Exception as exc:
            echo(f"ranker: cannot reuse {folder} ({exc!r:.120}); retraining it")
    echo(f"ranker: training a two-tower strictly before {cutoff} for the training week's candidates")
    # Never served: the snapshot and the stage-one tables the service would read are left out.
    return train_two_tower(dataset, cutoff, models_dir, version, epochs=epochs, publish_model=False, for_serving=False)


def serving_and_training_weeks(tx, cutoff: str | None, train_weeks: int) -> tuple[date, list[date]]:  # type: ignore[no-untyped-def]
    """(the serving cutoff, the training label weeks' starts, oldest first) for ``--cutoff``."""
    from shared.split import default_cutoff, shift_cutoff

    when = parse_cutoff(cutoff)
    if when == "default":
        serve_cutoff = default_cutoff(tx)
    elif when is None:  # production: the last week is the training week, features use everything
        serve_cutoff = (tx["t_dat"].max().normalize() + timedelta(days=1)).date()
    else:
        serve_cutoff = when  # type: ignore[assignment]
    return serve_cutoff, [shift_cutoff(serve_cutoff, back) for back in range(train_weeks, 0, -1)]


def train_week_two_towers(
    data_dir: Path, cache_dir: Path, models_dir: Path, cutoff: str | None, train_weeks: int, epochs: int | None
) -> None:
    """Every training week's two-tower (:func:`training_two_tower`), in a process of their own.

    Run as a child of ``hmrec train ranker`` before it loads anything: TensorFlow keeps what a
    Kaggle-scale training allocated (8.4 GiB resident after it, 4.4 of them the data), and the
    ranker's candidates and features then went past 12 GiB on top of it. A child gives it all
    back when it exits; the parent finds the models and reuses them."""
    from shared.data import load_dataset

    dataset = load_dataset(data_dir, cache_dir)
    for week in serving_and_training_weeks(dataset.transactions, cutoff, train_weeks)[1]:
        training_two_tower(dataset, week, models_dir, epochs, click.echo)


def _train_week_two_towers_apart(paths, cutoff: str | None, train_weeks: int, epochs: int | None) -> None:  # type: ignore[no-untyped-def]
    import multiprocessing
    import signal

    child = multiprocessing.get_context("spawn").Process(
        target=train_week_two_towers,
        args=(paths.data_dir, paths.cache_dir, paths.models_dir, cutoff, train_weeks, epochs),
        name="ranker-two-towers",
    )

    def stopped(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    # `hmrec run` stops its steps with SIGTERM: the child (GBs, TensorFlow) must stop with us.
    previous = signal.signal(signal.SIGTERM, stopped)
    try:
        child.start()
        child.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if child.is_alive():
            child.terminate()
            child.join(30)
    if child.exitcode != 0:
        raise click.ClickException(f"training the training weeks' two-towers failed (exit code {child.exitcode})")


def _training_candidates(
    paths: Any, dataset: Any, serve_cutoff: date, weeks: list[date]
) -> tuple[dict[date, Any], list[str]]:
    """Each training week's stage-one candidates for that week's buyers, from the week's
    two-tower (weeks nobody bought in are skipped); and the names of the two-towers used."""
    from pipeline.evaluated_candidates import candidates_at
    from shared.memory import memory_note, release_free_memory
    from shared.split import label_week, purchases_by_customer

    tx = dataset.transactions
    candidates_by_week = {}
    two_towers = []
    for week in weeks:
        click.echo(
            f"ranker: training label week {week} .. {week + timedelta(days=6)}; "
            f"features for serving strictly before {serve_cutoff}"
        )
        two_tower = week_two_tower_dir(paths.models_dir, week)  # trained (or checked) by the child
        buyers = sorted(purchases_by_customer(label_week(tx, week)))
        if not buyers:
            click.echo(f"ranker: nobody bought anything in the week from {week}; skipping it")
            continue
        # What training reads (not the tag nor the stage-one rank), then the step's garbage handed back.
        found = candidates_at(two_tower, dataset, week, buyers)
        candidates_by_week[week] = found.drop(columns=[c for c in ("source", "rank") if c in found])
        del found
        release_free_memory()
        two_towers.append(two_tower.name)
        click.echo(
            f"ranker: {len(candidates_by_week[week]):,} candidates for {len(buyers):,} buyers of that week "
            f"({memory_note()})"
        )
    return candidates_by_week, two_towers


@click.command("ranker")
@path_options
@cutoff_option
@click.option(
    "--model-version",
    default=None,
    help="Version folder name (default: a new timestamp; an existing version is never replaced).",
)
@click.option("--force", is_flag=True, help="Publish even if the publish gate says the model loses to a baseline.")
@click.option("--epochs", type=int, default=30, show_default=True, help="MMoE epochs (early stopping).")
@click.option("--two-tower-epochs", type=int, default=None, help="Epochs of the training-week two-tower.")
@click.option(
    "--train-weeks",
    type=click.IntRange(1, 12),
    default=8,
    show_default=True,
    help="Labelled weeks before the cutoff to learn from (each needs its own two-tower; "
    "on `small` 4 weeks beat 2 by ~15 % MAP@12, 8 beat 4 again). 1 is fastest.",
)
@click.option(
    "--loss",
    type=click.Choice(["pointwise", "listwise"]),
    default="pointwise",
    show_default=True,
    help="Purchase-task loss: per candidate, or a softmax over each customer's list "
    "(equal within noise on `small`, see services/ranker/train.py).",
)
@click.option(
    "--single-task/--no-single-task",
    default=True,
    show_default=True,
    help="Also train the single-task ablation (mmoe_single_task).",
)
@click.option("--seed", type=int, default=0, show_default=True)
def train_ranker_command(
    data_dir: Path | None,
    output_dir: Path | None,
    cutoff: str | None,
    model_version: str | None,
    force: bool,
    epochs: int,
    two_tower_epochs: int | None,
    train_weeks: int,
    loss: str,
    single_task: bool,
    seed: int,
) -> None:
    """Train the MMoE re-ranker on the week before the cutoff; export to output/models/mmoe/<version>/."""
    from services.ranker import RankerTrainConfig, train_ranker
    from shared.artifacts import new_version
    from shared.data import load_dataset

    paths = paths_from(data_dir, output_dir)
    parse_cutoff(cutoff)  # a bad --cutoff is a usage error here, not a failure in the child
    _train_week_two_towers_apart(paths, cutoff, train_weeks, two_tower_epochs)
    dataset = load_dataset(paths.data_dir, paths.cache_dir)
    tx = dataset.transactions
    serve_cutoff, weeks = serving_and_training_weeks(tx, cutoff, train_weeks)
    candidates_by_week, two_towers = _training_candidates(paths, dataset, serve_cutoff, weeks)
    if not candidates_by_week:
        raise click.ClickException("no purchases in any training week: nothing to learn from")
    out = train_ranker(
        tx,
        dataset.customers,
        dataset.articles,
        candidates_by_week,
        serve_cutoff,
        paths.models_dir,
        model_version or new_version(),
        RankerTrainConfig(epochs=epochs, seed=seed, loss=loss),
        with_single_task=single_task,
        metadata={"candidate_models": two_towers, "data_dir": str(paths.data_dir)},
        echo=click.echo,
        force=force,
    )
    for name, folder in out.items():
        click.echo(f"{name}: {folder}")


@click.command("rerank")
@path_options
@click.option("--customer-id", "customer_ids", multiple=True, help="Only these customers (repeatable).")
@click.option("--model-version", default=None, help="Ranker version (default: CURRENT).")
@click.option("--k", type=click.IntRange(1, 1000), default=12, show_default=True, help="Kept per customer.")
@click.option(
    "--max-candidates",
    type=click.IntRange(1, 5000),
    default=None,
    help="Re-rank only each customer's first N candidates in stage-one order (default: all, as served).",
)
@click.option("--chunk-customers", type=click.IntRange(1), default=2000, show_default=True)
def rerank_command(
    data_dir: Path | None,
    output_dir: Path | None,
    customer_ids: tuple[str, ...],
    model_version: str | None,
    k: int,
    max_candidates: int | None,
    chunk_customers: int,
) -> None:
    """Re-rank output/inference/inference_results.parquet -> output/reranked_recommendations.parquet."""
    from services.ranker import MODEL_NAME, LoadedRanker, rerank_file
    from shared.artifacts import ArtifactError, model_dir
    from shared.serving.app import limit_threads

    limit_threads(blas=1)  # chunks of ~200k x 31 features: one BLAS thread measured 2.5x faster here
    paths = paths_from(data_dir, output_dir)
    source = paths.inference_dir / "inference_results.parquet"
    if not source.exists():
        raise click.ClickException(f"{source} not found: run `hmrec infer` first")
    try:
        ranker = LoadedRanker.load(model_dir(paths.models_dir, MODEL_NAME, model_version))
    except ArtifactError as exc:
        raise click.ClickException(f"{exc} (train one with `hmrec train ranker`)") from exc
    target = paths.output_dir / "reranked_recommendations.parquet"
    stats = rerank_file(
        ranker,
        source,
        target,
        k=k,
        max_candidates=max_candidates,
        customer_ids=list(customer_ids) or None,
        chunk_customers=chunk_customers,
    )
    click.echo(f"ranker {ranker.version}: {stats.summary()}; wrote {target}")


@click.command("ranker")
@path_options
@click.option("--model-version", default=None, help="Ranker version (default: CURRENT).")
def explain_ranker_command(data_dir: Path | None, output_dir: Path | None, model_version: str | None) -> None:
    """Which experts each task's gate uses (mean gate weight on the validation customers)."""
    from shared.artifacts import ArtifactError, model_dir, read_metadata

    paths = paths_from(data_dir, output_dir)
    try:
        folder = model_dir(paths.models_dir, "mmoe", model_version)
    except ArtifactError as exc:
        raise click.ClickException(str(exc)) from exc
    meta = read_metadata(folder)
    usage: dict[str, list[float]] = meta["gate_usage"]
    n = len(next(iter(usage.values())))
    click.echo(f"MMoE {meta['version']} (cutoff {meta['cutoff']}): mean gate weight per expert and task")
    click.echo("task".ljust(10) + "".join(f"e{i}".rjust(8) for i in range(n)) + "   top expert")
    for task, weights in usage.items():
        top = max(range(n), key=lambda i: weights[i])
        click.echo(task.ljust(10) + "".join(f"{w:8.3f}" for w in weights) + f"   e{top}")
    click.echo(f"score weights: {meta['score_weights']}")
    metrics = meta.get("metrics", {})
    click.echo("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
