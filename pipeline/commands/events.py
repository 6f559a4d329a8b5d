"""``hmrec events drain``: the events' Redis Stream -> ``output/events/*.parquet`` (for training).

The drain itself (consumer group, batches, acknowledgement, reading the files back) is
pipeline/event_drain.py; ``--follow`` keeps going: the small worker ``hmrec run`` and compose start.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from pipeline.event_drain import drain
from pipeline.options import path_options, paths_from


@click.group("events")
def events_group() -> None:
    """Browsing events (POST /events on the gateway): drain them to parquet."""


@click.command("drain")
@path_options
@click.option(
    "--redis-url",
    default=lambda: os.environ.get("HM_EVENTS_REDIS_URL", "redis://127.0.0.1:6379/0"),
    show_default="$HM_EVENTS_REDIS_URL or redis://127.0.0.1:6379/0",
)
@click.option(
    "--prefix",
    default=lambda: os.environ.get("HM_EVENTS_PREFIX", "hm:ev"),
    show_default="$HM_EVENTS_PREFIX or hm:ev",
    help="The key prefix the gateway writes events under (its HM_EVENTS_PREFIX).",
)
@click.option("--follow", is_flag=True, help="Keep draining (the worker); else stop when the stream is empty.")
@click.option("--batch", type=click.IntRange(1, 100_000), default=10_000, show_default=True)
@click.option(
    "--heartbeat",
    type=click.Path(path_type=Path),
    default=None,
    help="File touched after each pass that reached Redis (a liveness check).",
)
def drain_command(
    data_dir: Path | None,
    output_dir: Path | None,
    redis_url: str,
    prefix: str,
    follow: bool,
    batch: int,
    heartbeat: Path | None,
) -> None:
    """Write the events stream to <output>/events/events-<first>-<last>.parquet."""
    out_dir = paths_from(data_dir, output_dir).output_dir / "events"
    total = drain(redis_url, prefix, out_dir, follow, batch, heartbeat=heartbeat)
    click.echo(f"drained {total:,} events to {out_dir}")
