"""Bounded load on the gateway over loopback; prints a table.

    .venv/bin/python benchmarks/bench_gateway.py                      # self-contained (see below)
    .venv/bin/python benchmarks/bench_gateway.py --gateway-url http://127.0.0.1:8000   # a running stack

Scenarios (concurrency 16 unless --concurrency):

- ``/recommend cached``: 16 known customers, each warmed once, then every request is a hit.
- ``/recommend uncached``: known customers, each request with a unique no-op ``price_max``
  (above every price), so every request misses and runs candidates -> ranker -> cards.
- ``/search text``: catalogue words as queries, each request a unique (query, k) pair.

Self-contained mode measures the gateway itself: it generates a synthetic ``tiny`` world (or
uses --data-dir), starts three *fake* services as separate processes (candidates: 200 ids
from the catalogue per request; ranker: re-orders them; search: 12..100 ids), the real
gateway as a uvicorn process with Redis (if reachable), and the load generator here.
Goals (issue 6, on 2 cores): cached p99 < 15 ms and >= 300 req/s; uncached p99 < 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi import FastAPI, File, Form, UploadFile  # noqa: E402

from shared.contract.schemas import CandidateRequest, RankRequest, TextSearchRequest  # noqa: E402

GOALS = {"recommend cached": (15.0, 300.0), "recommend uncached": (150.0, None)}


# --- fake services (run as: bench_gateway.py --serve-fake NAME --port P --data-dir D) ------------


def fake_app(name: str, data_dir: Path):  # FastAPI
    import hashlib

    import pandas as pd

    ids = pd.read_csv(data_dir / "articles.csv", usecols=["article_id"], dtype=str)["article_id"].str.zfill(10).tolist()
    app = FastAPI()

    @app.get("/readyz")
    def readyz() -> dict:
        return {"ready": True, "service": name, "model_version": "bench"}

    if name == "candidate":

        @app.post("/candidates")
        async def candidates(req: CandidateRequest) -> dict:
            seed = int(hashlib.sha1(req.customer_id.encode()).hexdigest()[:8], 16)
            picked = random.Random(seed).sample(ids, min(req.k, len(ids)))
            return {
                "customer_id": req.customer_id,
                "model_version": "bench",
                "cold_start": False,
                "candidates": [{"article_id": a, "score": 1.0 - i / 1000} for i, a in enumerate(picked)],
            }
    elif name == "ranker":

        @app.post("/rank")
        async def rank(req: RankRequest) -> dict:
            ranked = sorted(req.candidates, key=lambda c: c.article_id)[: req.k]
            return {
                "model_version": "bench",
                "ranked": [
                    {"article_id": c.article_id, "score": c.score, "task_scores": {"purchase": c.score}} for c in ranked
                ],
            }
    else:

        @app.post("/search/text")
        async def text(req: TextSearchRequest) -> dict:
            picked = random.Random(req.query).sample(ids, min(req.k, len(ids)))
            return {
                "index_version": "bench",
                "mode": req.mode,
                "personalised": False,
                "results": [{"article_id": a, "score": 1.0} for a in picked],
                "facets": {},
            }

        @app.post("/search/image")
        async def image(file: UploadFile = File(...), k: int = Form(12)) -> dict:
            await file.read()
            return {
                "index_version": "bench",
                "mode": "image",
                "personalised": False,
                "results": [{"article_id": a, "score": 1.0} for a in ids[:k]],
                "facets": {},
            }

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_reachable() -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", 6379)) == 0


def wait_ready(url: str, procs: list[subprocess.Popen], timeout_s: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a process exited while waiting for {url}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} not ready")


class SelfContained:
    """Fakes + the real gateway as processes; stopped by their own pids."""

    def __init__(self, data_dir: Path | None) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="bench_gateway_")
        self.data_dir = data_dir or Path(self.tmp.name) / "data"
        self.procs: list[subprocess.Popen] = []

    @property
    def gateway_pid(self) -> int:
        return self.procs[-1].pid

    def __enter__(self) -> str:
        if not (self.data_dir / "articles.csv").exists():
            print(f"generating a synthetic tiny world in {self.data_dir} ...", file=sys.stderr)
            from pipeline.synthetic import generate_world

            generate_world(self.data_dir, scale="tiny", seed=0, images=False)
        ports = {name: free_port() for name in ("candidate", "ranker", "search", "gateway")}
        for name in ("candidate", "ranker", "search"):
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--serve-fake",
                        name,
                        "--port",
                        str(ports[name]),
                        "--data-dir",
                        str(self.data_dir),
                    ],
                    cwd=ROOT,
                    start_new_session=True,
                )
            )
        env = dict(os.environ)
        env.update(
            {
                "HM_GATEWAY_CANDIDATE_URL": f"http://127.0.0.1:{ports['candidate']}",
                "HM_GATEWAY_RANKER_URL": f"http://127.0.0.1:{ports['ranker']}",
                "HM_GATEWAY_SEARCH_URL": f"http://127.0.0.1:{ports['search']}",
                "HM_GATEWAY_REDIS_URL": "redis://127.0.0.1:6379/0" if redis_reachable() else "",
                "HM_GATEWAY_CACHE_PREFIX": f"hm:bench:{uuid.uuid4().hex[:8]}",
                "HM_GATEWAY_DATA_DIR": str(self.data_dir),
                "HM_GATEWAY_OUTPUT_DIR": str(Path(self.tmp.name) / "output"),
                "HM_GATEWAY_LOG_LEVEL": "WARNING",
            }
        )
        self.procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "services.gateway.app:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(ports["gateway"]),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
                start_new_session=True,
            )
        )
        url = f"http://127.0.0.1:{ports['gateway']}"
        wait_ready(url, self.procs)
        return url

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.tmp.cleanup()


# --- load -----------------------------------------------------------------------------------------


def cpu_seconds(pid: int | None) -> float | None:
    """User+system CPU seconds of a process so far (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


async def run_load(
    session: aiohttp.ClientSession,
    make_request,
    n: int,
    concurrency: int,
    gateway_pid: int | None = None,
    service_pids: dict[str, int] | None = None,
) -> dict:
    """``n`` requests from ``concurrency`` workers; latency of each, errors counted, and the
    gateway's CPU per request when its pid is known (a figure other load on the machine
    does not distort, unlike req/s); ``service_pids``: the same per named process."""
    latencies: list[float] = []
    errors = 0
    degraded = 0  # 200s served by a fallback path (ranker or candidates unavailable / too slow)
    counter = iter(range(n))

    async def worker() -> None:
        nonlocal errors, degraded
        for i in counter:
            method, url, kwargs = make_request(i)
            started = time.perf_counter()
            try:
                async with session.request(method, url, **kwargs) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        errors += 1
                    elif b'"degraded":[]' not in body:
                        degraded += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - started)

    cpu_before = cpu_seconds(gateway_pid)
    services_before = {name: cpu_seconds(pid) for name, pid in (service_pids or {}).items()}
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    cpu_after = cpu_seconds(gateway_pid)
    services_after = {name: cpu_seconds(pid) for name, pid in (service_pids or {}).items()}
    latencies.sort()
    return {
        "n": n,
        "errors": errors,
        "degraded": degraded,
        "rps": n / wall,
        "cpu_ms": None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / n * 1000,
        "service_cpu_ms": {
            name: (services_after[name] - before) / n * 1000
            for name, before in services_before.items()
            if before is not None and services_after[name] is not None
        },
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
    }


async def bench(
    url: str,
    concurrency: int,
    n_cached: int,
    n_uncached: int,
    n_search: int,
    gateway_pid: int | None = None,
    service_pids: dict[str, int] | None = None,
) -> list[tuple[str, dict]]:
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.get(url + "/customers", params={"limit": 50}) as r:
            customers = [c["customer_id"] for c in await r.json()]
        async with session.get(url + "/facets") as r:
            facets = (await r.json())["facets"]
        words = [f["value"].split()[0].lower() for f in facets.get("product_type_name", [])[:20]] or ["dress"]
        hot = customers[:16]
        for c in hot:  # warm: the next request for each is a cache hit
            async with session.get(url + "/recommend", params={"customer_id": c}) as r:
                await r.read()
        nonce = random.Random()  # unseeded: a rerun within the TTL must not hit the previous run's keys
        results = []
        results.append(
            (
                "recommend cached",
                await run_load(
                    session,
                    lambda i: ("GET", url + "/recommend", {"params": {"customer_id": hot[i % len(hot)]}}),
                    n_cached,
                    concurrency,
                    gateway_pid,
                    service_pids,
                ),
            )
        )
        results.append(
            (
                "recommend uncached",
                await run_load(
                    session,
                    lambda i: (
                        "GET",
                        url + "/recommend",
                        {
                            "params": {
                                "customer_id": customers[i % len(customers)],
                                "price_max": f"{1000 + nonce.random():.12f}",
                            }
                        },
                    ),
                    n_uncached,
                    concurrency,
                    gateway_pid,
                    service_pids,
                ),
            )
        )
        results.append(
            (
                "search text (uncached)",
                await run_load(
                    session,
                    lambda i: (
                        "POST",
                        url + "/search",
                        {"json": {"query": f"{words[i % len(words)]} {uuid.uuid4().hex[:6]}", "k": 12}},
                    ),
                    n_search,
                    concurrency,
                    gateway_pid,
                    service_pids,
                ),
            )
        )
    return results


def print_table(results: list[tuple[str, dict]], concurrency: int, where: str) -> None:
    print(f"\nGateway load benchmark ({where}; concurrency {concurrency}; loopback)")
    print(
        f"{'scenario':<24}{'requests':>9}{'errors':>8}{'degraded':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'gw CPU ms/req':>15}  goal"
    )
    for name, r in results:
        goal = GOALS.get(name)
        verdict = ""
        if goal:
            p99_goal, rps_goal = goal
            ok = r["p99"] < p99_goal and (rps_goal is None or r["rps"] >= rps_goal)
            verdict = f"p99 < {p99_goal:.0f} ms" + (f", >= {rps_goal:.0f} req/s" if rps_goal else "")
            verdict += "  OK" if ok else "  MISSED"
        cpu = "n/a" if r.get("cpu_ms") is None else f"{r['cpu_ms']:.2f}"
        print(
            f"{name:<24}{r['n']:>9}{r['errors']:>8}{r['degraded']:>9}{r['rps']:>9.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}{cpu:>15}  {verdict}"
        )
    print(f"machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway-url", help="benchmark a running gateway instead of a self-contained one")
    parser.add_argument("--gateway-pid", type=int, help="with --gateway-url: its pid, to report CPU per request")
    parser.add_argument("--data-dir", type=Path, help="self-contained mode: a data folder (default: tiny world)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--cached", type=int, default=3000, help="requests in the cached scenario")
    parser.add_argument("--uncached", type=int, default=1000)
    parser.add_argument("--search", type=int, default=500)
    parser.add_argument("--serve-fake", choices=["candidate", "ranker", "search"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve_fake:
        import uvicorn

        uvicorn.run(
            fake_app(args.serve_fake, args.data_dir),
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            access_log=False,
        )
        return
    if args.gateway_url:
        results = asyncio.run(
            bench(
                args.gateway_url.rstrip("/"),
                args.concurrency,
                args.cached,
                args.uncached,
                args.search,
                args.gateway_pid,
            )
        )
        print_table(results, args.concurrency, f"running stack at {args.gateway_url}")
        return
    stack = SelfContained(args.data_dir)
    with stack as url:
        results = asyncio.run(bench(url, args.concurrency, args.cached, args.uncached, args.search, stack.gateway_pid))
    print_table(
        results,
        args.concurrency,
        "real gateway + fake services as processes, Redis " + ("on" if redis_reachable() else "off (in-process cache)"),
    )


if __name__ == "__main__":
    main()
