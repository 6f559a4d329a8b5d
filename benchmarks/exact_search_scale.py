"""When the candidate service's exact search stops being enough: one query's cost against the
catalogue size, on one thread (the services run with OMP_NUM_THREADS=1). Prints a table.

    .venv/bin/python benchmarks/exact_search_scale.py [--articles 105542,300000,1000000,3000000]

The index is the service's own (services.candidate.index.ExactIndex: a float32 matrix product,
then a top-k partition), over random unit vectors of the two-tower's dimension (64), with the
not-sold mask the service applies (a third of the articles sold recently, as at Kaggle scale).
Cost depends on the number of articles, not on what they are. docs/scaling.md reads the
catalogue size at which one query passes the candidate's 10 ms budget from this table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.candidate.index import ExactIndex

DIM = 64
BUDGET_MS = 10.0  # the candidate service's in-process p99 goal (services/gateway/settings.py)


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def measure(n: int, queries: int, k: int, rng: np.random.Generator) -> dict[str, float]:
    index = ExactIndex(unit_vectors(rng, n))
    allowed = rng.random(n) < 1 / 3
    q = unit_vectors(rng, queries)
    index.search(q[:1], k, allowed)  # warm
    times = []
    cpu_start = time.process_time()
    for i in range(queries):
        started = time.perf_counter()
        index.search(q[i : i + 1], k, allowed)
        times.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu_start
    times.sort()
    return {
        "articles": n,
        "p50": 1000 * times[len(times) // 2],
        "p99": 1000 * times[int(0.99 * len(times))],
        "cpu": 1000 * cpu / queries,
        "mib": index.embeddings.nbytes / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", default="105542,300000,1000000,3000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--top-k", type=int, default=100)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"\nexact search, one query, top-{args.top_k}, {DIM} dims, one thread, a third of the articles allowed")
    print(
        f"{'articles':>10} {'index MiB':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/query':>13}  within {BUDGET_MS:.0f} ms"
    )
    for n in (int(x) for x in args.articles.split(",")):
        r = measure(n, args.queries, args.top_k, rng)
        print(
            f"{r['articles']:>10,} {r['mib']:>10.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['cpu']:>13.2f}  "
            f"{'yes' if r['p99'] <= BUDGET_MS else 'NO'}"
        )
    print(f"machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
