"""Batch re-ranking of the candidate file, customer chunk by customer chunk.

Reads ``inference_results.parquet`` (stage one's customer_id, article_id, score, rank and
``src_<source>`` columns) in record batches, keeps each customer's first ``max_candidates``
in stage-one order (all of them by default, as ``/recommend`` does), scores them with the ranker and streams the top ``k`` per customer into the output parquet (written
beside the target and renamed into place). A customer's rows must be contiguous in the
input (the candidate stage writes them that way); a customer seen twice is an error rather
than a silently split list.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from services.ranker.serving import LoadedRanker
from shared.atomic import replace_atomically, temp_path_for
from shared.candidates import SOURCE_COLUMNS


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


def customer_chunks(
    source: Path, chunk_customers: int, customer_ids: list[str] | None = None, batch_rows: int = 200_000
) -> Iterator[pd.DataFrame]:
    """Frames holding whole customers (about ``chunk_customers`` each), in file order."""
    file = pq.ParquetFile(source)
    wanted = set(customer_ids) if customer_ids else None
    seen: set[str] = set()
    carry = pd.DataFrame()
    present = set(file.schema_arrow.names)
    columns = ["customer_id", "article_id", "score", *[c for c in ("rank", *SOURCE_COLUMNS) if c in present]]
    for batch in file.iter_batches(batch_size=batch_rows, columns=columns):
        frame = batch.to_pandas()
        if wanted is not None:
            frame = frame[frame["customer_id"].isin(wanted)]
        frame = pd.concat([carry, frame], ignore_index=True) if len(carry) else frame
        if frame.empty:
            continue
        order = pd.unique(frame["customer_id"])
        # The last customer may continue in the next batch: hold it back.
        complete, last = order[:-1], order[-1]
        carry = frame[frame["customer_id"] == last]
        for start in range(0, len(complete), chunk_customers):
            ids = complete[start : start + chunk_customers]
            again = seen.intersection(ids)
            if again:
                raise ValueError(f"{source}: rows of customer {next(iter(again))} are not contiguous")
            seen.update(ids)
            yield frame[frame["customer_id"].isin(set(ids))]
    if len(carry):
        if carry["customer_id"].iloc[0] in seen:
            raise ValueError(f"{source}: rows of customer {carry['customer_id'].iloc[0]} are not contiguous")
        yield carry


def best_candidates(frame: pd.DataFrame, max_candidates: int | None) -> pd.DataFrame:
    """Each customer's first ``max_candidates`` rows in stage-one order (``rank``; by score in
    an old file without it); None keeps them all."""
    if max_candidates is None:
        return frame
    key = "rank" if "rank" in frame else "score"
    frame = frame.sort_values(["customer_id", key], ascending=[True, key == "rank"], kind="stable")
    return frame[frame.groupby("customer_id", sort=False).cumcount() < max_candidates]


def rerank_file(
    ranker: LoadedRanker,
    source: Path,
    target: Path,
    k: int = 12,
    max_candidates: int | None = None,
    customer_ids: list[str] | None = None,
    chunk_customers: int = 2000,
    progress: bool = True,
) -> RerankStats:
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
    t0 = time.perf_counter()
    with pq.ParquetWriter(tmp, schema) as writer:
        for chunk in customer_chunks(Path(source), chunk_customers, customer_ids):
            chunk = best_candidates(chunk, max_candidates)
            out = ranker.rerank_frame(chunk, k=k)
            out["rank"] = out["rank"].astype("int32")
            writer.write_table(pa.Table.from_pandas(out[schema.names], schema=schema, preserve_index=False))
            n = chunk["customer_id"].nunique()
            stats.customers += n
            stats.rows_in += len(chunk)
            stats.rows_out += len(out)
            if bar is not None:
                bar.update(n)
    if bar is not None:
        bar.close()
    replace_atomically(tmp, target)
    stats.seconds = time.perf_counter() - t0
    return stats
