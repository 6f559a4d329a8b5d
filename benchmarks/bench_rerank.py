"""The batch re-ranker's costs: the MMoE forward pass by block size, and (given a pipeline's
output folder) ``hmrec rerank`` over its first customers, one thread against the core pool.

    .venv/bin/python benchmarks/bench_rerank.py                       # forward pass only
    .venv/bin/python benchmarks/bench_rerank.py --output-dir output/kaggle_pipeline/medium/output

The forward pass runs on random weights of the production shape (what it costs does not depend
on the values); ``--output-dir`` needs ``inference/inference_results.parquet`` and a published
``models/mmoe``. Prints a table; numbers are wall seconds on this machine, so rerun the rows
you compare in one call.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.ranker import model as mmoe  # noqa: E402
from services.ranker.features import N_FEATURES  # noqa: E402
from shared.parallel import CORES  # noqa: E402


def random_mmoe(seed: int = 0) -> mmoe.NumpyMMoE:
    cfg = mmoe.MMoEConfig(n_features=N_FEATURES)
    rng = np.random.default_rng(seed)
    e, u, t = cfg.n_experts, cfg.expert_units, cfg.tower_units
    w = {"expert_kernel": rng.normal(size=(N_FEATURES, u, e)), "expert_bias": rng.normal(size=(u, e))}
    for spec in cfg.tasks:
        n = spec.name
        w[f"gate_kernel/{n}"] = rng.normal(size=(N_FEATURES, e))
        w[f"gate_bias/{n}"] = rng.normal(size=e)
        w[f"tower_w1/{n}"] = rng.normal(size=(u, t))
        w[f"tower_b1/{n}"] = rng.normal(size=t)
        w[f"tower_w2/{n}"] = rng.normal(size=(t, 1))
        w[f"tower_b2/{n}"] = rng.normal(size=1)
    return mmoe.NumpyMMoE(cfg, w, np.zeros(N_FEATURES), np.ones(N_FEATURES))


def bench_forward(rows: int, repeats: int) -> list[tuple[str, float]]:
    model = random_mmoe()
    x = np.random.default_rng(1).normal(size=(rows, N_FEATURES)).astype(np.float32)
    out = []
    for blas in (1, None):  # the re-ranker's workers run BLAS on one thread each
        for block in (1024, 4096, 16384, rows):
            mmoe.FORWARD_ROWS = block
            with threadpool_limits(limits=blas, user_api="blas"):
                model.forward(x[:block])  # warm
                t0 = time.perf_counter()
                for _ in range(repeats):
                    model.forward(x)
            threads = "1 BLAS thread" if blas else "BLAS default threads"
            out.append(
                (f"forward, {rows:,} rows, blocks of {block:,}, {threads}", (time.perf_counter() - t0) / repeats)
            )
    mmoe.FORWARD_ROWS = 4096
    return out


def bench_rerank(output_dir: Path, customers: int) -> list[tuple[str, float]]:
    import pyarrow.parquet as pq

    from services.ranker import rerank
    from services.ranker.serving import LoadedRanker
    from shared.artifacts import model_dir

    ranker = LoadedRanker.load(model_dir(output_dir / "models", "mmoe"))
    source = output_dir / "inference" / "inference_results.parquet"
    file = pq.ParquetFile(source)
    ids: list[str] = []
    for batch in file.iter_batches(columns=["customer_id"], batch_size=200_000):
        for c in batch.column(0).unique().to_pylist():
            if c not in ids:
                ids.append(c)
        if len(ids) >= customers:
            break
    ids = ids[:customers]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (CORES, 1, CORES):
            t0 = time.perf_counter()
            stats = rerank.rerank_file(
                ranker, source, Path(tmp) / "out.parquet", customer_ids=ids, progress=False, workers=workers
            )
            seconds = time.perf_counter() - t0
            out.append((f"rerank {stats.customers:,} customers ({stats.rows_in:,} rows), {workers} worker(s)", seconds))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=400_000, help="rows per forward call (a 2,000-customer chunk)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--output-dir", type=Path, default=None, help="a pipeline output folder to re-rank from")
    ap.add_argument("--customers", type=int, default=20_000)
    args = ap.parse_args()
    rows = bench_forward(args.rows, args.repeats)
    if args.output_dir is not None:
        rows += bench_rerank(args.output_dir, args.customers)
    print(f"{'what':<70} {'seconds':>8}   (load average {os.getloadavg()[0]:.1f})")
    for label, seconds in rows:
        print(f"{label:<70} {seconds:8.2f}")


if __name__ == "__main__":
    main()
