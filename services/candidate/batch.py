"""``inference_results.parquet``: stage one for every customer, streamed in customer chunks.

Columns: the seed-compatible ``customer_id, article_id, score, rank`` (score = two-tower
cosine, rank = stage-one order) plus ``source`` (the first source that proposed it) and one
``src_<source>`` column per source (shared.candidates). The same :func:`stage_one` the
service answers with, so ``hmrec rerank`` re-ranks exactly what ``/recommend`` would.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.candidate.artifact import LoadedTwoTower, load_two_tower
from services.candidate.stage_one import StageOneConfig, StageOneTables, build_tables, stage_one
from services.candidate.two_tower_source import TwoTowerSource
from shared.atomic import replace_atomically, temp_path_for
from shared.candidates import SOURCE_COLUMNS


@dataclass
class BatchStats:
    customers: int = 0
    rows: int = 0
    seconds: float = 0.0
    by_source: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        rate = self.customers / self.seconds if self.seconds > 0 else float("nan")
        sources = ", ".join(f"{k} {v:,}" for k, v in sorted(self.by_source.items()))
        return (
            f"{self.customers:,} customers, {self.rows:,} candidates ({sources}); "
            f"{self.seconds:.1f}s, {rate:,.0f} customers/s"
        )


def exclude(
    frame: pd.DataFrame, article_ids: list[str], attributes: dict[str, list[str]], articles: pd.DataFrame
) -> pd.DataFrame:
    """Drop configured articles and attribute values (the operator's exclusions)."""
    drop = {a.zfill(10) for a in article_ids}
    for column, values in attributes.items():
        if column not in articles:
            raise ValueError(f"cannot exclude on {column!r}: no such article column")
        drop |= set(articles.loc[articles[column].astype(str).isin(values), "article_id"].astype(str))
    return frame[~frame["article_id"].isin(drop)] if drop else frame


def stage_one_batches(
    model: LoadedTwoTower | Path,
    dataset: Any,
    cutoff: date | None,
    customer_ids: list[str] | None,
    config: StageOneConfig,
    chunk_size: int = 2048,
    tables: StageOneTables | None = None,
    progress: bool = False,
):  # type: ignore[no-untyped-def]
    """Yield stage-one frames of ``chunk_size`` customers (all customers by default, sorted)."""
    m = model if isinstance(model, LoadedTwoTower) else load_two_tower(Path(model))
    source = TwoTowerSource.offline(m, dataset, cutoff, config.not_sold_weeks)
    tables = tables or build_tables(
        dataset.transactions, dataset.customers, dataset.articles, source.as_of, not_sold_weeks=config.not_sold_weeks
    )
    ids = (
        np.array(sorted(dataset.customers["customer_id"].astype(str)), dtype=object)
        if customer_ids is None
        else np.asarray([str(c) for c in customer_ids], dtype=object)
    )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(ids), unit="customer", desc="stage one", file=sys.stderr)
    for s in range(0, len(ids), chunk_size):
        chunk = ids[s : s + chunk_size]
        yield stage_one(tables, source, chunk, config)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()


def write_stage_one(
    model: LoadedTwoTower | Path,
    dataset: Any,
    out_path: Path,
    cutoff: date | None = None,
    customer_ids: list[str] | None = None,
    config: StageOneConfig | None = None,
    exclude_article_ids: list[str] | None = None,
    exclude_attributes: dict[str, list[str]] | None = None,
    chunk_size: int = 2048,
    progress: bool = True,
) -> BatchStats:
    """Write every customer's stage-one candidates to ``out_path`` (a unique temporary file in
    the same folder, renamed into place when complete)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    config = config or StageOneConfig()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema(
        [
            ("customer_id", pa.string()),
            ("article_id", pa.string()),
            ("score", pa.float32()),
            ("rank", pa.int32()),
            ("source", pa.string()),
            *[(c, pa.float32()) for c in SOURCE_COLUMNS],
        ]
    )
    stats = BatchStats()
    t0 = time.perf_counter()
    tmp = temp_path_for(out_path)  # unique per run: two runs at once never share it
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for frame in stage_one_batches(model, dataset, cutoff, customer_ids, config, chunk_size, progress=progress):
                if exclude_article_ids or exclude_attributes:
                    frame = exclude(frame, exclude_article_ids or [], exclude_attributes or {}, dataset.articles)
                    frame = frame.assign(rank=frame.groupby("customer_id", sort=False).cumcount().astype(np.int32) + 1)
                writer.write_table(pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False))
                stats.customers += frame["customer_id"].nunique()
                stats.rows += len(frame)
                for name, n in frame["source"].value_counts().items():
                    stats.by_source[str(name)] = stats.by_source.get(str(name), 0) + int(n)
        replace_atomically(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    stats.seconds = time.perf_counter() - t0
    return stats
