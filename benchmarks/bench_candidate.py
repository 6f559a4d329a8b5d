"""Candidate stage benchmark: one-customer retrieval latency, batch inference, training speed.

    python benchmarks/bench_candidate.py [--model-dir output/models/two_tower/<v>] [--articles 105542]
        [--customers 1371980] [--measure-customers 40000] [--top-k 100]

The query tower is a real trained model (``--model-dir``, default: CURRENT under $HM_OUTPUT_DIR);
the catalogue is synthesised at Kaggle size (random unit vectors of the model's dimension), because
retrieval cost depends on the number of articles, not on what they are. Batch inference builds
query inputs for all ``--customers`` (so their memory is really held), runs
``--measure-customers`` of them through encode + search + select, and extrapolates the time
linearly (chunks are independent). Training throughput is read from the model's metadata
(examples/s of its own training run).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.candidate.artifact import load_two_tower
from services.candidate.index import ExactIndex
from services.candidate.infer import select
from shared.artifacts import model_dir
from shared.config import get_paths


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1000, q))


def synthetic_queries(model, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Query inputs for ``n`` customers drawn from the model's own vocabularies."""
    space = model.space
    return {
        "customer_idx": rng.integers(0, space.n_customers + 1, n).astype(np.int32),
        "age_bucket": rng.integers(0, 12, n).astype(np.int32),
        "postal_bucket": rng.integers(0, space.postal_buckets, n).astype(np.int32),
        "fn": rng.integers(0, 2, n).astype(np.float32),
        "active": rng.integers(0, 2, n).astype(np.float32),
        "club_member_status": rng.integers(0, len(space.customer_vocab["club_member_status"]) + 1, n).astype(np.int32),
        "fashion_news_frequency": rng.integers(0, len(space.customer_vocab["fashion_news_frequency"]) + 1, n).astype(
            np.int32
        ),
        "history": rng.integers(0, space.n_articles + 1, (n, space.history_len)).astype(np.int32),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--articles", type=int, default=105_542)
    ap.add_argument("--customers", type=int, default=1_371_980)
    ap.add_argument("--measure-customers", type=int, default=40_000)
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=1000, help="one-customer requests timed")
    args = ap.parse_args()

    folder = args.model_dir or model_dir(get_paths().models_dir, "two_tower")
    model = load_two_tower(folder)
    dim = model.index.embeddings.shape[1]
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((args.articles, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    index = ExactIndex(emb)
    allowed = rng.random(args.articles) < 0.9  # a not-sold filter removing ~10%
    rows: list[tuple[str, str]] = []

    # --- one customer: encode + exact search over the full catalogue -------------------------
    # As the service runs it: one BLAS thread per request (CandidateSettings.blas_threads).
    from threadpoolctl import threadpool_limits

    single = threadpool_limits(limits=1, user_api="blas")
    one = synthetic_queries(model, args.queries, rng)
    enc, search, total = [], [], []
    for i in range(args.queries + 20):
        feats = {k: v[i % args.queries : i % args.queries + 1] for k, v in one.items()}
        t0 = time.perf_counter()
        q = model.encode(feats)
        t1 = time.perf_counter()
        index.search(q, 100, allowed)
        t2 = time.perf_counter()
        if i >= 20:  # warm-up excluded
            enc.append(t1 - t0)
            search.append(t2 - t1)
            total.append(t2 - t0)
    for name, s in (
        ("query tower (1 customer)", enc),
        (f"exact top-100 over {args.articles:,}", search),
        ("retrieval end to end", total),
    ):
        rows.append((f"{name} p50 / p99", f"{percentile_ms(s, 50):.2f} / {percentile_ms(s, 99):.2f} ms"))

    single.restore_original_limits()

    # --- batch inference ----------------------------------------------------------------------
    base = rss_mb()
    feats = synthetic_queries(model, args.customers, rng)  # held for all customers, as infer does
    held = rss_mb()
    n = min(args.measure_customers, args.customers)
    t0 = time.perf_counter()
    kept = 0
    for s in range(0, n, args.chunk_size):
        chunk = {k: v[s : s + args.chunk_size] for k, v in feats.items()}
        q = model.encode(chunk)
        idx, sc = index.search(q, args.top_k + 1, allowed)
        keep, _, _ = select(idx, sc, args.top_k, None, 12)
        kept += int(keep.sum())
    secs = time.perf_counter() - t0
    rate = n / secs
    rows += [
        (
            f"batch inference ({n:,} customers measured, top-{args.top_k}, chunk {args.chunk_size})",
            f"{rate:,.0f} customers/s",
        ),
        (f"extrapolated to {args.customers:,} customers", f"{args.customers / rate / 60:,.1f} min"),
        (f"query inputs held for {args.customers:,} customers", f"{held - base:,.0f} MB"),
        ("peak RSS of the whole run", f"{rss_mb():,.0f} MB"),
    ]

    # --- training ------------------------------------------------------------------------------
    m = model.metadata.get("metrics", {})
    rows.append(
        (
            f"training ({m.get('train_pairs', 0):,} pairs, {model.metadata.get('data_summary', {}).get('articles', '?')} articles)",
            f"{m.get('train_examples_per_s', float('nan')):,.0f} examples/s, {m.get('train_seconds', float('nan')):,.0f} s total",
        )
    )

    width = max(len(r[0]) for r in rows)
    import os

    print(
        f"candidate benchmark: model {folder}, dim {dim}, {args.articles:,} articles; "
        f"{os.cpu_count()} cores, load average at the end {os.getloadavg()[0]:.1f}"
    )
    print(f"{'measure'.ljust(width)}  value")
    print(f"{'-' * width}  {'-' * 30}")
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
    print(json.dumps({"rows": rows}), file=sys.stderr)


if __name__ == "__main__":
    main()
