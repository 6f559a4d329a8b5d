"""Text search throughput over HTTP at a given concurrency: the real search service (uvicorn,
one process, as deployed), distinct queries (no cache hits) or a repeating head-heavy mix.

    .venv/bin/python benchmarks/bench_search_http.py --index-dir OUT/search --data-dir REAL \\
        --requests 2000 --concurrency 16 --mix distinct|repeat [--env HM_SEARCH_BACKEND=torch ...]
    .venv/bin/python benchmarks/bench_search_http.py --repo OTHER_CHECKOUT ...   # serve another checkout's code

Queries are "<adjective> <colour> <product type>" worded from the catalogue (the phrasing of
services.search.evaluate.text_queries), each used once for ``distinct``; ``repeat`` draws them
from a Zipf(1.1) law over a pool of 2,000 (real shops' head queries) and reports the share of
repeats, which is the query-embedding cache's hit rate once warm. Reported: req/s, p50/p99
latency, and the server's CPU milliseconds per query (utime + stime of the uvicorn process
from /proc, divided by the requests), with the load average: on a shared machine the CPU cost
is the number that does not depend on the neighbours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import aiohttp  # noqa: E402
from bench_gateway import free_port, run_load  # noqa: E402

ADJECTIVES = ["", "cheap ", "soft ", "summer ", "long ", "short ", "slim ", "cotton ", "warm ", "casual ", "party "]


def queries(data_dir: Path, n: int, mix: str, seed: int = 0) -> tuple[list[str], float]:
    import pandas as pd

    articles = pd.read_csv(data_dir / "articles.csv", dtype=str, usecols=["colour_group_name", "product_type_name"])
    pairs = sorted(
        {(c.lower(), t.lower()) for c, t in zip(articles.colour_group_name, articles.product_type_name, strict=True)}
    )
    pool = [f"{a}{c} {t}" for a in ADJECTIVES for c, t in pairs]
    rng = np.random.default_rng(seed)
    rng.shuffle(pool)
    if mix == "distinct":
        if len(pool) < n:
            raise SystemExit(f"only {len(pool)} distinct queries; ask for fewer requests")
        return pool[:n], 0.0
    head = pool[:2000]
    weights = 1.0 / np.arange(1, len(head) + 1) ** 1.1
    picked = [head[i] for i in rng.choice(len(head), size=n, p=weights / weights.sum())]
    seen: set[str] = set()
    repeats = 0
    for q in picked:
        repeats += q in seen
        seen.add(q)
    return picked, repeats / n


async def fire(url: str, qs: list[str], concurrency: int, mode: str, server_pid: int | None = None) -> dict:
    """Each query once, from ``concurrency`` workers (bench_gateway's load loop); any non-200 is fatal."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        result = await run_load(
            session,
            lambda i: ("POST", url, {"json": {"query": qs[i], "k": 100, "mode": mode}}),
            len(qs),
            concurrency,
            service_pids={"search": server_pid} if server_pid else None,
        )
    if result["errors"]:
        raise RuntimeError(f"{result['errors']} of {len(qs)} queries answered other than 200")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index-dir", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, required=True, help="articles.csv to word queries from")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--mix", choices=["distinct", "repeat"], default="distinct")
    ap.add_argument("--mode", default="hybrid")
    ap.add_argument("--repo", type=Path, default=ROOT, help="checkout whose services.search to serve")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service, repeatable")
    ap.add_argument("--label", default="")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    qs, repeat_share = queries(args.data_dir, args.warmup + args.requests, args.mix)
    warm, timed = qs[: args.warmup], qs[args.warmup :]
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(args.repo),
        "HM_SEARCH_INDEX_DIR": str(args.index_dir.resolve()),
        "HM_SEARCH_PERSONAL_SOURCE": "off",
        "HM_SEARCH_LOG_LEVEL": "WARNING",
        "HM_SEARCH_MAX_IN_FLIGHT": "1000",
        **dict(kv.split("=", 1) for kv in args.env),
    }
    cmd = [sys.executable, "-m", "uvicorn", "services.search.app:create_app", "--factory", "--port", str(port)]
    server = subprocess.Popen([*cmd, "--no-access-log"], cwd=args.repo, env=env, stderr=subprocess.DEVNULL)
    try:
        import urllib.request

        for _ in range(600):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise SystemExit("the search service did not become ready")
        url = f"http://127.0.0.1:{port}/search/text"
        asyncio.run(fire(url, warm, args.concurrency, args.mode))
        load0 = os.getloadavg()[0]
        result = asyncio.run(fire(url, timed, args.concurrency, args.mode, server.pid))
    finally:
        server.terminate()
        server.wait(10)
    row = {
        "label": args.label,
        "mix": args.mix,
        "repeat_share": round(repeat_share, 3),
        "requests": len(timed),
        "concurrency": args.concurrency,
        "req_per_s": round(result["rps"], 1),
        "p50_ms": round(result["p50"], 1),
        "p99_ms": round(result["p99"], 1),
        "server_cpu_ms_per_query": round(result["service_cpu_ms"]["search"], 2),
        "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "env": args.env,
    }
    print(json.dumps(row))
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
