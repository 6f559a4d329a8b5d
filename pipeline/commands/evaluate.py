"""``hmrec evaluate``: score every available method on the week after the cutoff.

``evaluate`` is a group (``hmrec evaluate search`` is the search module's command; pipeline/cli.py
adds it); run without a subcommand it evaluates the recommenders of the families ``pipeline.methods.METHOD_MODULES`` names.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.options import cutoff_option, parse_cutoff, path_options, paths_from
from shared.data import DataValidationError

HELP = (
    "Score every recommender whose artifacts exist (plus the baselines) on the 7 days after the "
    "cutoff: MAP@12, recall@12/100/500. Models trained on those days are refused."
)


@click.group("evaluate", invoke_without_command=True, help=HELP)
@path_options
@cutoff_option
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the metrics (default: <output-dir>/evaluation/metrics.json).",
)
@click.option(
    "--methods", default=None, help="Comma-separated method names to score (default: every available method)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random baseline.")
@click.option(
    "--served",
    is_flag=True,
    help="Also replay the week through the published models as the services call them ('served').",
)
@click.option(
    "--gateway-url", default=None, help="Also replay the week through a running gateway's /recommend ('served_http')."
)
@click.option(
    "--sessions",
    is_flag=True,
    help="Instead: replay the week with browsing sessions (the feed with vs without them; pipeline/session_replay.py).",
)
@click.option(
    "--events",
    "events_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="With --sessions: drained events (output/events) instead of the synthetic sessions.",
)
@click.pass_context
def evaluate_group(
    ctx: click.Context,
    data_dir: Path | None,
    output_dir: Path | None,
    cutoff: str | None,
    json_path: Path | None,
    methods: str | None,
    seed: int,
    served: bool,
    gateway_url: str | None,
    sessions: bool = False,
    events_dir: Path | None = None,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    if sessions:
        _session_replay(data_dir, output_dir, cutoff, json_path, seed, events_dir)
        return
    _evaluate_methods(data_dir, output_dir, cutoff, json_path, methods, seed, served, gateway_url)


def _evaluate_methods(
    data_dir: Path | None,
    output_dir: Path | None,
    cutoff: str | None,
    json_path: Path | None,
    methods: str | None,
    seed: int,
    served: bool,
    gateway_url: str | None,
) -> None:
    # Imported here so that `hmrec --help` stays fast.
    from pipeline.evaluation import (
        LeakageError,
        evaluate,
        format_table,
        load_context,
        write_json,
        write_plot,
    )
    from shared.artifacts import ArtifactError

    when = parse_cutoff(cutoff)
    if when is None:
        raise click.BadParameter("evaluation needs a held-out week; 'none' is for training", param_hint="--cutoff")
    paths = paths_from(data_dir, output_dir)
    only = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    try:
        eval_ctx = load_context(paths, cutoff=None if when == "default" else when, seed=seed)  # type: ignore[arg-type]
        extra = {}
        if served:
            from pipeline.served import served_in_process

            extra["served"] = served_in_process(eval_ctx)
        if gateway_url:
            from pipeline.served import served_over_http

            extra["served_http"] = served_over_http(gateway_url)
        if only is not None:
            only = [*only, *extra]
        result = evaluate(eval_ctx, only=only, extra=extra)
    except (DataValidationError, FileNotFoundError, ValueError, ArtifactError, LeakageError) as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyError as exc:
        raise click.BadParameter(str(exc.args[0]), param_hint="--methods") from exc
    click.echo(format_table(result))
    target = json_path or paths.output_dir / "evaluation" / "metrics.json"
    write_json(result, target)
    if result.metrics:
        write_plot(result, target.with_suffix(".png"))
    click.echo(f"wrote {target}")


def _session_replay(
    data_dir: Path | None,
    output_dir: Path | None,
    cutoff: str | None,
    json_path: Path | None,
    seed: int,
    events_dir: Path | None,
) -> None:
    import json

    from pipeline.evaluation import LeakageError
    from pipeline.session_replay import format_summary, run_session_replay
    from shared.artifacts import ArtifactError
    from shared.atomic import write_text_atomic

    when = parse_cutoff(cutoff)
    if when is None:
        raise click.BadParameter("the replay needs a held-out week; 'none' is for training", param_hint="--cutoff")
    paths = paths_from(data_dir, output_dir)
    try:
        result = run_session_replay(paths, None if when == "default" else when, seed, events_dir)  # type: ignore[arg-type]
    except (DataValidationError, FileNotFoundError, ValueError, ArtifactError, LeakageError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_summary(result))
    target = json_path or paths.output_dir / "evaluation" / "sessions.json"
    write_text_atomic(target, json.dumps(result, indent=2))
    click.echo(f"wrote {target}")
