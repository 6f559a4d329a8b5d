"""Assemble a world: catalogue -> tastes -> customers -> transactions (streamed) -> images."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline.synthetic.catalogue import build_catalogue
from pipeline.synthetic.customers import build_customers, build_tastes
from pipeline.synthetic.images import write_images
from pipeline.synthetic.scales import get_scale
from pipeline.synthetic.transactions import generate_transactions, write_transactions
from shared.atomic import file_stamp, read_marker, write_marker

log = logging.getLogger(__name__)


def generate_world(out_dir: Path, scale: str = "tiny", seed: int = 0, images: bool = True) -> Path:
    """Write a synthetic world of ``scale`` into ``out_dir`` (created) and return it."""
    spec = get_scale(scale)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Completion marker: "writing" first, "complete" (with the files it vouches for) last, so
    # an interrupted generation is known as such and regenerated, never trusted (world_status).
    write_marker(out_dir / WORLD_MARKER, {"state": "writing", "scale": scale, "seed": seed})
    started = time.perf_counter()
    # Independent streams per part, so e.g. turning images off leaves the CSVs identical.
    rng_catalogue, rng_customers, rng_transactions = (np.random.default_rng([seed, i]) for i in range(3))
    catalogue = build_catalogue(rng_catalogue, spec.n_articles)
    catalogue.frame.to_csv(out_dir / "articles.csv", index=False)
    tastes = build_tastes(rng_customers, catalogue, spec.n_clusters)
    customers = build_customers(rng_customers, spec.n_customers, tastes)
    _write_plain_csv(out_dir / "customers.csv", customers.frame)
    rows = write_transactions(
        out_dir / "transactions_train.csv",
        generate_transactions(rng_transactions, catalogue, customers, tastes, spec.n_transactions),
    )
    log.info(
        "wrote %d articles, %d customers, %d transactions to %s in %.1fs",
        len(catalogue),
        spec.n_customers,
        rows,
        out_dir,
        time.perf_counter() - started,
    )
    if images:
        write_images(out_dir / "images", catalogue.frame, spec.image_size, seed)
    write_marker(
        out_dir / WORLD_MARKER,
        {
            "state": "complete",
            "scale": scale,
            "seed": seed,
            "images": images,
            "files": {name: file_stamp(out_dir / name) for name in WORLD_FILES},
        },
    )
    return out_dir


WORLD_MARKER = ".synthetic_world.json"
WORLD_FILES = ("articles.csv", "customers.csv", "transactions_train.csv")


def world_status(data_dir: Path) -> str:
    """``missing`` (no data), ``external`` (CSVs this generator did not write, e.g. Kaggle's),
    ``complete`` (a synthetic world whose marker vouches for every CSV as it is now) or
    ``incomplete`` (generation interrupted, or its CSVs changed since: regenerate it)."""
    data_dir = Path(data_dir)
    marker = read_marker(data_dir / WORLD_MARKER)
    if marker is None:
        if (data_dir / WORLD_MARKER).exists():
            return "incomplete"  # a marker cut short
        present = (data_dir / "articles.csv").exists() and (data_dir / "transactions_train.csv").exists()
        return "external" if present else "missing"
    if marker.get("state") != "complete":
        return "incomplete"
    files = marker.get("files") or {}
    for name in WORLD_FILES:
        path = data_dir / name
        if not path.exists() or files.get(name) != file_stamp(path):
            return "incomplete"
    return "complete"


def _write_plain_csv(path: Path, frame) -> None:
    """Fields without commas or quotes: arrow writes them unquoted, fast at 1.4M rows."""
    table = pa.Table.from_pandas(frame.astype(str), preserve_index=False)
    with open(path, "wb") as sink:
        sink.write((",".join(frame.columns) + "\n").encode())
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
