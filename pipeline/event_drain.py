"""The events' Redis Stream -> ``output/events/*.parquet`` (for training): what ``hmrec events
drain`` runs and what the session replay and the benchmarks read back.

A consumer of the stream's ``drain`` group: it reads entries the group has not delivered
(first any it was given before and did not acknowledge: a drain killed mid-write re-reads
them), writes each batch as one parquet file atomically, and only then acknowledges them
(XACK) and deletes them from the stream (XDEL). A crash between the file and the XACK
repeats a batch in the next file; rows carry the event's ``uid`` so readers drop the repeat
(:func:`read_events`). ``--follow`` keeps going: the small worker ``hmrec run`` and compose start.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import click
import pandas as pd
import redis
from redis.exceptions import RedisError, ResponseError

from services.gateway import decode_entry
from shared.atomic import atomic_path

GROUP = "drain"


def ensure_group(client: redis.Redis, stream: str) -> None:
    try:
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def write_batch(rows: list[dict[str, Any]], out_dir: Path) -> Path:
    """One parquet file named by the batch's first and last stream ids (sortable, unique)."""
    first, last = (r["event_id"].replace("-", "_") for r in (rows[0], rows[-1]))
    target = out_dir / f"events-{first}-{last}.parquet"
    with atomic_path(target) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)
    return target


def drain_once(
    client: redis.Redis, stream: str, out_dir: Path, consumer: str, count: int = 10_000, block_ms: int | None = None
) -> int:
    """Move one batch (up to ``count`` entries) from the stream to a parquet file; entries written."""
    # "0" = this consumer's delivered-but-unacknowledged entries first; ">" = new ones.
    for start in ("0", ">"):
        reply: Any = client.xreadgroup(
            GROUP, consumer, {stream: start}, count=count, block=block_ms if start == ">" else None
        )
        entries = [(eid, fields) for _name, items in (reply or []) for eid, fields in items if fields]
        if entries:
            write_batch([decode_entry(eid, fields) for eid, fields in entries], out_dir)
            ids = [eid for eid, _ in entries]
            client.xack(stream, GROUP, *ids)
            client.xdel(stream, *ids)
            return len(entries)
    return 0


def drain(
    redis_url: str,
    prefix: str,
    out_dir: Path,
    follow: bool,
    count: int = 10_000,
    poll_s: float = 1.0,
    heartbeat: Path | None = None,
) -> int:
    """Drain until the stream is empty (or forever with ``follow``); total entries written.
    ``heartbeat``: a file touched after every pass that reached Redis (compose's healthcheck)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=2)
    stream = f"{prefix}:stream"
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    total, ready = 0, False
    while True:
        try:
            if not ready:
                ensure_group(client, stream)
                ready = True
            n = drain_once(client, stream, out_dir, consumer, count, block_ms=int(poll_s * 1000) if follow else None)
        except (RedisError, OSError) as exc:
            if not follow:
                raise click.ClickException(f"Redis at {redis_url}: {exc}") from exc
            click.echo(f"[events drain] Redis unavailable ({exc.__class__.__name__}); retrying", err=True)
            ready = False
            time.sleep(poll_s)
            continue
        total += n
        if heartbeat is not None:
            heartbeat.touch()
        if n:
            click.echo(f"[events drain] wrote {n:,} events (total {total:,})", err=True)
        elif not follow:
            return total


def read_events(events_dir: Path) -> pd.DataFrame:
    """Every drained event, oldest first, each once (by ``uid``)."""
    files = sorted(Path(events_dir).glob("events-*.parquet"))
    if not files:
        return pd.DataFrame(
            columns=["uid", "event_id", "session", "customer_id", "session_id", "article_id", "type", "ts", "received"]
        )
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return frame.drop_duplicates("uid", keep="first").reset_index(drop=True)
