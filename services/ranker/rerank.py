"""Batch re-ranking of the candidate file, customer chunk by customer chunk.

Reads ``inference_results.parquet`` (stage one's customer_id, article_id, score, rank and
``src_<source>`` columns) in record batches, keeps each customer's first ``max_candidates``
in stage-one order (all of them by default, as ``/recommend`` does), scores them with the
ranker and streams the top ``k`` per customer into the output parquet (written beside the
target and renamed into place). A customer's rows must be contiguous in the input (the
candidate stage writes them that way); a customer seen twice is an error rather than a
silently split list.

The chunks stay arrow tables: at Kaggle scale the file holds 271M candidates, and turning
their two id columns into Python strings (then pandas sorts and group-bys on them) was most
of this stage. Ids are looked up once per distinct value of a chunk, rows are ints from
there on, and the output's ids are gathered by arrow. The scores are
:meth:`~services.ranker.serving.LoadedRanker.rerank_frame`'s (tests/ranker prove it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits

from services.ranker.serving import LoadedRanker
from shared.atomic import replace_atomically, temp_path_for
from shared.contract.candidate_sources import SOURCE_COLUMNS
from shared.group_ranks import rank_within
from shared.parallel import in_order


@dataclass
class RerankStats:
    customers: int = 0
    rows_in: int = 0
    rows_out: int = 0
    seconds: float = 0.0

    @property
    def customers_per_s(self) -> float:
        return self.customers / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        return (
            f"{self.customers:,} customers, {self.rows_in:,} candidates in, {self.rows_out:,} rows out "
            f"in {self.seconds:.1f}s ({self.customers_per_s:,.0f} customers/s)"
        )


def _customer_runs(column: pa.Array) -> tuple[np.ndarray, list[str]]:
    """(per row, the number of its customer in order of appearance; those customers' ids)."""
    encoded = pc.dictionary_encode(column)
    return encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary.to_pylist()


def customer_chunks(
    source: Path, chunk_customers: int, customer_ids: list[str] | None = None, batch_rows: int = 200_000
) -> Iterator[pa.Table]:
    """Tables holding whole customers (``chunk_customers`` each, the last fewer), in file order."""
    file = pq.ParquetFile(source)
    wanted = pa.array(sorted(set(customer_ids)), pa.string()) if customer_ids else None
    seen: set[str] = set()
    carry: pa.Table | None = None
    present = set(file.schema_arrow.names)
    columns = ["customer_id", "article_id", "score", *[c for c in ("rank", *SOURCE_COLUMNS) if c in present]]

    def complete(table: pa.Table, runs: np.ndarray, ids: list[str], n_done: int) -> Iterator[pa.Table]:
        """The rows of customers 0 .. n_done - 1 (contiguous, since ``runs`` never decreases)."""
        again = seen.intersection(ids[:n_done])
        if again:
            raise ValueError(f"{source}: rows of customer {next(iter(again))} are not contiguous")
        seen.update(ids[:n_done])
        for start in range(0, n_done, chunk_customers):
            lo, hi = np.searchsorted(runs, [start, min(start + chunk_customers, n_done)])
            yield table.slice(int(lo), int(hi - lo))

    for batch in file.iter_batches(batch_size=batch_rows, columns=columns):
        table = pa.Table.from_batches([batch])
        if wanted is not None:
            table = table.filter(pc.is_in(table["customer_id"], value_set=wanted))
        if carry is not None:
            table = pa.concat_tables([carry, table])
        if table.num_rows == 0:
            continue
        table = table.combine_chunks()
        runs, ids = _customer_runs(table["customer_id"].chunk(0))
        if (np.diff(runs) < 0).any():  # numbered in order of appearance: a step back is a customer again
            back = int(np.flatnonzero(np.diff(runs) < 0)[0]) + 1
            raise ValueError(f"{source}: rows of customer {ids[runs[back]]} are not contiguous")
        # The last customer may continue in the next batch: hold it back.
        last = len(ids) - 1
        cut = int(np.searchsorted(runs, last))
        carry = table.slice(cut)
        yield from complete(table, runs, ids, last)
    if carry is not None and carry.num_rows:
        runs, ids = _customer_runs(carry["customer_id"].combine_chunks())
        yield from complete(carry, runs, ids, len(ids))


@dataclass
class CandidateRows:
    """One chunk's candidates as arrays: ``group`` numbers each row's customer in customer-id
    order (the output's order), ``customer`` / ``article`` the ranker store's rows."""

    table: pa.Table
    group: np.ndarray
    customer: np.ndarray
    article: np.ndarray
    scores: np.ndarray
    sources: np.ndarray


def _groups_in_id_order(table: pa.Table) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(each row's run of its customer, the runs' customer ids, each row's customer numbered
    in customer-id order: the output's order)."""
    runs, ids = _customer_runs(table["customer_id"].combine_chunks())
    group_of_run = np.empty(len(ids), dtype=np.int64)
    group_of_run[np.argsort(np.asarray(ids, dtype=object), kind="stable")] = np.arange(len(ids))
    return runs, ids, group_of_run[runs]


def candidate_rows(ranker: LoadedRanker, table: pa.Table) -> CandidateRows:
    """Look each distinct customer and article of the chunk up once; every row by int from there."""
    runs, ids, group = _groups_in_id_order(table)
    articles = pc.dictionary_encode(table["article_id"].combine_chunks())
    article_rows = ranker.store.article_rows(np.asarray(articles.dictionary.to_pylist(), dtype=object))
    sources = np.zeros((table.num_rows, len(SOURCE_COLUMNS)), dtype=np.float32)
    for j, name in enumerate(SOURCE_COLUMNS):
        if name in table.column_names:
            sources[:, j] = table[name].to_numpy().astype(np.float32, copy=False)
    return CandidateRows(
        table,
        group,
        ranker.store.customer_rows(np.asarray(ids, dtype=object))[runs],
        article_rows[articles.indices.to_numpy(zero_copy_only=False)],
        table["score"].to_numpy().astype(np.float64),
        sources,
    )


def best_candidates(table: pa.Table, max_candidates: int | None) -> pa.Table:
    """Each customer's first ``max_candidates`` rows in stage-one order (``rank``; by score in
    an old file without it), customers in id order; None keeps them all, as they are."""
    if max_candidates is None:
        return table
    group = _groups_in_id_order(table)[2]
    key = table["rank"].to_numpy() if "rank" in table.column_names else -table["score"].to_numpy()
    order = np.lexsort((key, group))
    keep = order[rank_within(group[order]) < max_candidates]
    return table.take(pa.array(keep))


def rerank_table(ranker: LoadedRanker, table: pa.Table, k: int, schema: pa.Schema) -> pa.Table:
    """The top ``k`` of each customer's candidates in ``table``, best first, as ``schema``'s
    columns (:meth:`LoadedRanker.rerank_frame`'s, ties kept in input order)."""
    rows = candidate_rows(ranker, table)
    combined, task_scores = ranker.score_store_rows(rows.customer, rows.article, rows.group, rows.scores, rows.sources)
    order = np.lexsort((-combined, rows.group))
    rank = rank_within(rows.group[order]) + 1
    kept = rank <= k
    pick, rank = order[kept], rank[kept]
    taken = pa.array(pick)
    columns = {
        "customer_id": pc.take(table["customer_id"], taken),
        "article_id": pc.take(table["article_id"], taken),
        "score": pa.array(combined[pick], pa.float64()),
        **{f"score_{t}": pa.array(v[pick].astype(np.float64), pa.float64()) for t, v in task_scores.items()},
        "candidate_score": pa.array(rows.scores[pick], pa.float64()),
        "rank": pa.array(rank.astype(np.int32), pa.int32()),
    }
    return pa.table([columns[name] for name in schema.names], schema=schema)


def rerank_file(
    ranker: LoadedRanker,
    source: Path,
    target: Path,
    k: int = 12,
    max_candidates: int | None = None,
    customer_ids: list[str] | None = None,
    chunk_customers: int = 2000,
    progress: bool = True,
    workers: int | None = None,
) -> RerankStats:
    """Re-rank ``source`` into ``target``; chunks are scored by ``workers`` threads (default:
    one per core, shared.parallel) and written in file order, so the file is the same whatever
    their number."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)  # unique per run: two runs at once never share it
    task_cols = [f"score_{t}" for t in ranker.task_names]
    schema = pa.schema(
        [
            ("customer_id", pa.string()),
            ("article_id", pa.string()),
            ("score", pa.float64()),
            *[(c, pa.float64()) for c in task_cols],
            ("candidate_score", pa.float64()),
            ("rank", pa.int32()),
        ]
    )
    stats = RerankStats()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="customer", desc="rerank", file=sys.stderr)

    def score(chunk: pa.Table) -> tuple[pa.Table, pa.Table]:
        chunk = best_candidates(chunk, max_candidates)
        return chunk, rerank_table(ranker, chunk, k, schema)

    t0 = time.perf_counter()
    chunks = customer_chunks(Path(source), chunk_customers, customer_ids)
    try:
        # One BLAS thread even alone: the products are [4,096 x 53] x [53 x 192], too small to split.
        with threadpool_limits(limits=1, user_api="blas"), pq.ParquetWriter(tmp, schema) as writer:
            for chunk, out in in_order(score, chunks, workers):
                writer.write_table(out)
                n = len(pc.unique(chunk["customer_id"]))
                stats.customers += n
                stats.rows_in += chunk.num_rows
                stats.rows_out += out.num_rows
                if bar is not None:
                    bar.update(n)
        replace_atomically(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if bar is not None:
        bar.close()
    stats.seconds = time.perf_counter() - t0
    return stats
