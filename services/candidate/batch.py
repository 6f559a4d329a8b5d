"""``inference_results.parquet``: stage one for every customer, streamed in customer chunks.

Columns: the seed-compatible ``customer_id, article_id, score, rank`` (score = two-tower
cosine, rank = stage-one order) plus ``source`` (the first source that proposed it) and one
``src_<source>`` column per source (shared.contract.candidate_sources). The same :func:`stage_one_frame` the
service answers with, so ``hmrec rerank`` re-ranks exactly what ``/recommend`` would.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from services.candidate.artifact import LoadedTwoTower, load_two_tower
from services.candidate.stage_one import (
    SOURCE_PRIORITY,
    StageOneConfig,
    StageOneLists,
    StageOneTables,
    build_tables,
    first_source,
    list_ranks,
    lists_frame,
    stage_one_lists,
)
from services.candidate.two_tower_source import TwoTowerSource
from shared.atomic import replace_atomically, temp_path_for
from shared.contract.candidate_sources import SOURCE_COLUMNS
from shared.parallel import in_order


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


def excluded_articles(
    catalogue: np.ndarray, article_ids: list[str], attributes: dict[str, list[str]], articles: pd.DataFrame
) -> np.ndarray:
    """bool per article of ``catalogue`` (the stage-one tables' ids, in position order): the
    operator's exclusions, by id (``article_ids``) and by attribute value (``attributes``)."""
    drop = {a.zfill(10) for a in article_ids}
    for column, values in attributes.items():
        if column not in articles:
            raise ValueError(f"cannot exclude on {column!r}: no such article column")
        drop |= set(articles.loc[articles[column].astype(str).isin(values), "article_id"].astype(str))
    return np.isin(np.asarray(catalogue, dtype=object).astype(str), np.array(sorted(drop), dtype=str))


def stage_one_list_batches(
    model: LoadedTwoTower | Path,
    dataset: Any,
    cutoff: date | None,
    customer_ids: list[str] | None,
    config: StageOneConfig,
    chunk_size: int = 2048,
    tables: StageOneTables | None = None,
    progress: bool = False,
    workers: int | None = None,
) -> Iterator[tuple[StageOneTables, StageOneLists]]:
    """Yield (tables, stage-one lists) of ``chunk_size`` customers (all customers by default,
    sorted), computed ``workers`` chunks at a time (default: one per core)."""
    m = model if isinstance(model, LoadedTwoTower) else load_two_tower(Path(model))
    ids = (
        np.array(sorted(dataset.customers["customer_id"].astype(str)), dtype=object)
        if customer_ids is None
        else np.asarray([str(c) for c in customer_ids], dtype=object)
    )
    batch_ids = ids if len(ids) > chunk_size else None
    source = TwoTowerSource.offline(m, dataset, cutoff, config.not_sold_weeks, batch_ids=batch_ids)
    tables = tables or build_tables(
        dataset.transactions, dataset.customers, dataset.articles, source.as_of, not_sold_weeks=config.not_sold_weeks
    )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(ids), unit="customer", desc="stage one", file=sys.stderr)
    if len(ids):  # the id lookups' tables built once here, not once per worker thread at the start
        tables.customer_rows(ids[:1])
        source.queries(ids[:1])
    chunks = (ids[s : s + chunk_size] for s in range(0, len(ids), chunk_size))
    # A thread per core (shared.parallel): the two-tower's top-k alone was 60 % of the batch on
    # one core of two. Each chunk's lists depend on its own customers only, in the same order.
    for lists in in_order(lambda chunk: stage_one_lists(tables, source, chunk, config), chunks, workers):
        yield tables, lists
        if bar is not None:
            bar.update(len(lists.ids))
    if bar is not None:
        bar.close()


def stage_one_batches(
    model: LoadedTwoTower | Path,
    dataset: Any,
    cutoff: date | None,
    customer_ids: list[str] | None,
    config: StageOneConfig,
    chunk_size: int = 2048,
    tables: StageOneTables | None = None,
    progress: bool = False,
) -> Iterator[pd.DataFrame]:
    """Yield stage-one frames (:func:`~services.candidate.stage_one.stage_one_frame`'s columns) of
    ``chunk_size`` customers (all customers by default, sorted)."""
    batches = stage_one_list_batches(model, dataset, cutoff, customer_ids, config, chunk_size, tables, progress)
    for tables_used, lists in batches:
        yield lists_frame(tables_used, lists)


def _keep(lists: StageOneLists, keep: np.ndarray) -> StageOneLists:
    return StageOneLists(lists.ids, lists.row[keep], lists.article[keep], lists.cosine[keep], lists.values[keep])


def lists_table(lists: StageOneLists, article_ids: pa.Array, schema: pa.Schema) -> pa.Table:
    """One chunk of the batch file, straight from the arrays: the id columns are gathered by
    arrow from the chunk's ids and the catalogue (271M rows at Kaggle scale never become
    Python strings)."""
    columns = {
        "customer_id": pc.take(pa.array(lists.ids.astype(str), pa.string()), pa.array(lists.row)),
        "article_id": pc.take(article_ids, pa.array(lists.article)),
        "score": pa.array(lists.cosine, pa.float32()),
        "rank": pa.array(list_ranks(lists), pa.int32()),
        "source": pc.take(pa.array(SOURCE_PRIORITY, pa.string()), pa.array(first_source(lists.values))),
        **{c: pa.array(np.ascontiguousarray(lists.values[:, j]), pa.float32()) for j, c in enumerate(SOURCE_COLUMNS)},
    }
    return pa.table([columns[name] for name in schema.names], schema=schema)


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
    batches = stage_one_list_batches(model, dataset, cutoff, customer_ids, config, chunk_size, progress=progress)
    dropped: np.ndarray | None = None
    catalogue: pa.Array | None = None
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for tables, lists in batches:
                if catalogue is None:
                    catalogue = pa.array(tables.article_ids.astype(str), pa.string())
                if exclude_article_ids or exclude_attributes:
                    if dropped is None:
                        dropped = excluded_articles(
                            tables.article_ids, exclude_article_ids or [], exclude_attributes or {}, dataset.articles
                        )
                    lists = _keep(lists, ~dropped[lists.article])  # ranks are counted after the drop
                writer.write_table(lists_table(lists, catalogue, schema))
                stats.customers += len(np.unique(lists.row))
                stats.rows += len(lists.row)
                tags = np.bincount(first_source(lists.values), minlength=len(SOURCE_PRIORITY))
                for name, n in zip(SOURCE_PRIORITY, tags, strict=True):
                    if n:
                        stats.by_source[name] = stats.by_source.get(name, 0) + int(n)
        replace_atomically(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    stats.seconds = time.perf_counter() - t0
    return stats
