"""``hmrec run``: the whole product on this machine (what ``make run`` calls).

1. Data: a synthetic world (``small`` by default) if the data folder has no CSVs.
2. The first page: each missing servable artifact by its quick step (a one-epoch two-tower,
   a one-week ranker, the text search index; ``pipeline.warmup``), each an ``hmrec`` step in
   a subprocess. ``--full-first`` (and ``--pipeline-only``, Docker's job) trains everything at
   full quality here instead.
3. The services as uvicorn processes (candidate, ranker, search, then the gateway, which
   also serves the page), Redis if reachable (or started here if ``redis-server`` exists):
   the process supervisor, pipeline/supervisor.py.
4. Waits for the gateway's ``/readyz`` and prints the URL; then the full-quality phase runs
   in the background (photo index, full two-tower and ranker, batch files), each swapped in
   by the services' hot swap, its progress in ``output/warmup.json`` (the page shows it).
   On Ctrl-C / SIGTERM the background step stops first, then every child it started (by its
   own pid), gateway first.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from pipeline.options import path_options, paths_from
from pipeline.supervisor import echo, serve
from pipeline.warmup import FULL_QUALITY, FullQualityWorker, StepFailed, WarmupRecord, run_foreground, run_quick_steps
from shared.config import PathSettings

DEFAULT_PORTS = {"candidate": 8001, "ranker": 8002, "search": 8003}


# --- offline steps ------------------------------------------------------------------------------


def _has_data(data_dir: Path) -> bool:
    """CSVs we may use: a complete synthetic world, or data the generator did not write
    (Kaggle's). A world whose generation was interrupted is regenerated, not trusted."""
    from pipeline.synthetic.world import world_status

    status = world_status(data_dir)
    if status == "incomplete":
        echo(
            f"{data_dir} holds a synthetic world whose generation did not finish (or whose CSVs changed): "
            "generating it again"
        )
    return status in ("complete", "external")


def _run_step(args: list[str], env: dict[str, str], label: str) -> None:
    try:
        run_foreground(args, env, label, echo)
    except StepFailed as exc:
        raise click.ClickException(str(exc)) from exc


def _ensure_data(paths: PathSettings, scale: str, env: dict[str, str]) -> None:
    if not _has_data(paths.data_dir):
        _run_step(
            ["data", "synth", "--scale", scale, "--out", str(paths.data_dir)],
            env,
            f"no data in {paths.data_dir}: synthetic `{scale}` world",
        )


def prepare(paths: PathSettings, scale: str, env: dict[str, str], serving_only: bool = False) -> None:
    """Full quality before anything serves (``--pipeline-only``, ``--full-first``): synthesise data
    if the folder is empty, then every full-quality step whose output is missing (or is still a
    quick model); ``serving_only``: only what the services load, not the batch files."""
    _ensure_data(paths, scale, env)
    record = WarmupRecord(paths.warmup_file)
    for step in FULL_QUALITY:
        if serving_only and not step.serving:
            continue
        if not step.needed(paths, record):
            echo(f"{step.name}: present")
            continue
        _run_step(step.args(paths), env, step.name)


def prepare_first_page(paths: PathSettings, scale: str, env: dict[str, str]) -> WarmupRecord:
    """What the page needs, fast (pipeline.warmup): data, then a quick step for each missing
    servable artifact. The rest is the background's (:class:`FullQualityWorker`)."""
    _ensure_data(paths, scale, env)
    record = WarmupRecord(paths.warmup_file)
    try:
        run_quick_steps(paths, env, record, echo)
    except StepFailed as exc:
        raise click.ClickException(str(exc)) from exc
    return record


@click.command("run")
@path_options
@click.option("--scale", default="small", show_default=True, help="Synthetic world to generate when data/ is empty.")
@click.option(
    "--skip-pipeline",
    "--services-only",
    "skip_pipeline",
    is_flag=True,
    help="Start the services on whatever artifacts exist; run no offline step.",
)
@click.option("--pipeline-only", is_flag=True, help="Prepare data, models and indexes, then exit (Docker's job).")
@click.option(
    "--serving-only",
    is_flag=True,
    help="Only the steps the services need (models, search index); skip the batch files.",
)
@click.option(
    "--full-first",
    is_flag=True,
    help="Train every model and index at full quality before starting the services (no quick first page).",
)
@click.option("--host", default=None, help="Gateway host (default $HM_GATEWAY_HOST or 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Gateway port (default $HM_GATEWAY_PORT or 8000)."
)
@click.option("--candidate-port", type=click.IntRange(1, 65535), default=DEFAULT_PORTS["candidate"], show_default=True)
@click.option("--ranker-port", type=click.IntRange(1, 65535), default=DEFAULT_PORTS["ranker"], show_default=True)
@click.option("--search-port", type=click.IntRange(1, 65535), default=DEFAULT_PORTS["search"], show_default=True)
@click.option("--ready-timeout", type=float, default=900.0, show_default=True, help="Seconds to wait for /readyz.")
@click.option("--no-redis-start", is_flag=True, help="Never start a local redis-server.")
def run_command(
    data_dir: Path | None,
    output_dir: Path | None,
    scale: str,
    skip_pipeline: bool,
    pipeline_only: bool,
    host: str | None,
    port: int | None,
    candidate_port: int,
    ranker_port: int,
    search_port: int,
    ready_timeout: float,
    no_redis_start: bool,
    serving_only: bool,
    full_first: bool,
) -> None:
    """Data, models and indexes if missing, then every service and the page; Ctrl-C stops all."""
    if skip_pipeline and pipeline_only:
        raise click.UsageError("--skip-pipeline and --pipeline-only exclude each other")
    paths = paths_from(data_dir, output_dir)
    paths = PathSettings(data_dir=paths.data_dir.resolve(), output_dir=paths.output_dir.resolve())
    env = dict(os.environ)
    env.update(
        HM_DATA_DIR=str(paths.data_dir),
        HM_OUTPUT_DIR=str(paths.output_dir),
        TF_USE_LEGACY_KERAS="1",
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    background = None
    if pipeline_only or (full_first and not skip_pipeline):
        prepare(paths, scale, env, serving_only)
    elif not skip_pipeline:
        record = prepare_first_page(paths, scale, env)
        background = FullQualityWorker(paths, env, record, paths.output_dir / "logs", echo)
    if pipeline_only:
        echo("pipeline finished")
        return
    host = host or os.environ.get("HM_GATEWAY_HOST", "127.0.0.1")
    port = port or int(os.environ.get("HM_GATEWAY_PORT", "8000"))
    ports = {"candidate": candidate_port, "ranker": ranker_port, "search": search_port}
    code = serve(paths, host, port, ports, env, ready_timeout, start_redis=not no_redis_start, background=background)
    if code:
        sys.exit(code)
