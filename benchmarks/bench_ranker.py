"""Ranker speed: in-process latency of ranking 200 candidates, and batch re-rank throughput.

Usage: python benchmarks/bench_ranker.py [--output-dir output] [--requests 2000]

Uses the published ranker (``<output-dir>/models/mmoe``). Rows:

- ``rank() 200 candidates``: features (store lookups) + NumPy MMoE + sort, one customer,
  the path ``POST /rank`` takes (goal p99 < 20 ms);
- ``POST /rank via ASGI``: the same through FastAPI's routing and validation (TestClient,
  no network);
- ``rerank_frame``: customers per second when re-ranking 100 candidates each, 2,000
  customers per chunk (the batch ``hmrec rerank`` path without parquet I/O).

Customers and articles are drawn from the feature store, with 10 % unknown ids of each.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from services.ranker.serving import LoadedRanker
from shared.artifacts import model_dir
from shared.serving.app import limit_threads


def percentiles(samples_s: list[float]) -> tuple[float, float, float]:
    ms = np.asarray(samples_s) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(ms.max())


def draw(ranker: LoadedRanker, rng: np.random.Generator, n: int) -> tuple[str, list[str], np.ndarray]:
    store = ranker.store
    customer = (
        str(store.customer_ids[rng.integers(store.n_customers)])
        if rng.random() > 0.1
        else f"{rng.integers(2**62):064x}"
    )
    arts = [
        str(a) for a in store.article_ids[rng.choice(store.n_articles, size=min(n, store.n_articles), replace=False)]
    ]
    for i in range(0, len(arts), 10):  # 10 % unknown articles
        arts[i] = f"9{rng.integers(10**9):09d}"
    return customer, arts, np.sort(rng.random(len(arts)))[::-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="output")
    parser.add_argument("--model-version", default=None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--rerank-customers", type=int, default=4000)
    parser.add_argument("--blas-threads", type=int, default=1, help="as the service sets it (HM_RANKER_BLAS_THREADS)")
    args = parser.parse_args()
    limit_threads(blas=args.blas_threads)

    models = Path(args.output_dir) / "models"
    folder = model_dir(models, "mmoe", args.model_version)
    t0 = time.perf_counter()
    ranker = LoadedRanker.load(folder)
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    print(
        f"BLAS threads: {args.blas_threads}; ranker {ranker.version}: {ranker.store.n_customers:,} customers, {ranker.store.n_articles:,} articles "
        f"in the feature store; tasks {ranker.task_names}; loaded in {load_s:.2f}s"
    )

    requests = [draw(ranker, rng, args.candidates) for _ in range(args.requests)]
    for c, a, s in requests[:50]:  # warm-up
        ranker.rank(c, a, s, 12)
    samples = []
    for c, a, s in requests:
        t = time.perf_counter()
        ranker.rank(c, a, s, 12)
        samples.append(time.perf_counter() - t)
    rows = [(f"rank() {args.candidates} candidates", *percentiles(samples), f"{len(samples)} calls")]

    from fastapi.testclient import TestClient

    from services.ranker.app import create_app
    from services.ranker.settings import RankerSettings

    http = []
    settings = RankerSettings(
        models_dir=models,
        model_version=args.model_version,
        poll_interval_s=3600,
        blas_threads=args.blas_threads,
        log_level="WARNING",
    )
    with TestClient(create_app(settings)) as client:
        bodies = [
            {
                "customer_id": c,
                "k": 12,
                "candidates": [{"article_id": x, "score": float(y)} for x, y in zip(a, s, strict=True)],
            }
            for c, a, s in requests[: min(500, len(requests))]
        ]
        for b in bodies[:20]:
            client.post("/rank", json=b)
        for b in bodies:
            t = time.perf_counter()
            resp = client.post("/rank", json=b)
            http.append(time.perf_counter() - t)
            assert resp.status_code == 200, resp.text
    rows.append((f"POST /rank via ASGI ({args.candidates})", *percentiles(http), f"{len(http)} calls"))

    n_cust = min(args.rerank_customers, ranker.store.n_customers)
    customers = ranker.store.customer_ids[rng.choice(ranker.store.n_customers, n_cust, replace=False)]
    per = 100
    frame = pd.DataFrame(
        {
            "customer_id": np.repeat(customers.astype(str), per),
            "article_id": ranker.store.article_ids[rng.integers(ranker.store.n_articles, size=n_cust * per)].astype(
                str
            ),
            "score": rng.random(n_cust * per),
        }
    )
    t = time.perf_counter()
    for start in range(0, n_cust, 2000):
        chunk = frame.iloc[start * per : (start + 2000) * per]
        ranker.rerank_frame(chunk, k=12)
    rerank_s = time.perf_counter() - t

    print()
    print(f"{'measure':34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  note")
    print("-" * 80)
    for name, p50, p99, mx, note in rows:
        print(f"{name:34} {p50:8.2f} {p99:8.2f} {mx:8.2f}  {note}")
    print(
        f"{'rerank_frame throughput':34} {n_cust / rerank_s:8,.0f} customers/s  "
        f"({n_cust:,} customers x {per} candidates in {rerank_s:.2f}s)"
    )


if __name__ == "__main__":
    main()
