"""The architecture's floor beside the product, measured in the same run; prints one table.

    .venv/bin/python benchmarks/bench_floor.py                                    # the floor alone
    .venv/bin/python benchmarks/bench_floor.py --gateway-url http://127.0.0.1:8000 [--service-pids gateway=PID,...]

The floor is what this architecture costs with no work in it: trivial FastAPI services as
uvicorn processes (the product's server and flags), and

- ``/hello``: one FastAPI process answering a constant (the ceiling of one hop);
- ``3 hops``: a FastAPI gateway calling two no-op services over aiohttp, like the product's
  gateway: a "candidate" service answering 200 ids with scores, a "ranker" taking those 200
  and answering 12, the gateway answering the 12.

Then the product's ``/recommend`` (cached, uncached) and uncached text ``/search`` through
``--gateway-url``, with the same load generator (``bench_gateway.run_load``), so the share of
the floor is a fair ratio on a machine whose absolute numbers move with its other load.
``--rounds 2`` measures floor and product twice, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from fastapi import FastAPI, Request

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_gateway import bench, free_port, run_load, wait_ready  # noqa: E402

N_CANDIDATES, N_RANKED = 200, 12
ARTICLE_IDS = [f"{108775015 + 37 * i:010d}" for i in range(N_CANDIDATES)]
# Which product scenario is compared with which floor.
FLOOR_OF = {"recommend cached": "hello", "recommend uncached": "3 hops", "search text (uncached)": "3 hops"}


def floor_app(name: str, urls: dict[str, str]):
    """One trivial service: ``hello``, ``candidate``, ``ranker`` or ``gateway`` (calls the other two)."""
    state: dict[str, aiohttp.ClientSession] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if name == "gateway":
            state["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
        yield
        if "session" in state:
            await state["session"].close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/readyz")
    async def readyz() -> dict:
        return {"ready": True}

    @app.get("/hello")
    async def hello() -> dict:
        return {"hello": "world", "degraded": []}

    @app.post("/candidates")
    async def candidates(request: Request) -> dict:
        body = await request.json()
        return {
            "customer_id": body["customer_id"],
            "candidates": [{"article_id": a, "score": 1.0 - i / 1000} for i, a in enumerate(ARTICLE_IDS)],
        }

    @app.post("/rank")
    async def rank(request: Request) -> dict:
        body = await request.json()
        return {"ranked": body["candidates"][: body["k"]]}

    @app.get("/floor")
    async def floor(customer_id: str) -> dict:
        session = state["session"]
        async with session.post(urls["candidate"] + "/candidates", json={"customer_id": customer_id}) as r:
            found = await r.json()
        async with session.post(
            urls["ranker"] + "/rank",
            json={"customer_id": customer_id, "candidates": found["candidates"], "k": N_RANKED},
        ) as r:
            ranked = await r.json()
        return {"customer_id": customer_id, "degraded": [], "items": ranked["ranked"]}

    return app


class FloorServices:
    """The four trivial services as uvicorn processes, stopped by their own pids."""

    def __init__(self) -> None:
        self.ports = {n: free_port() for n in ("hello", "candidate", "ranker", "gateway")}
        self.procs: list[subprocess.Popen] = []

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def pid(self, name: str) -> int:
        return self.procs[list(self.ports).index(name)].pid

    def __enter__(self) -> FloorServices:
        for name in ("hello", "candidate", "ranker", "gateway"):
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--serve",
                        name,
                        "--port",
                        str(self.ports[name]),
                        "--candidate-url",
                        self.url("candidate"),
                        "--ranker-url",
                        self.url("ranker"),
                    ],
                    cwd=ROOT,
                    start_new_session=True,
                )
            )
        for name in self.ports:
            wait_ready(self.url(name), self.procs)
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


async def floor_load(floors: FloorServices, concurrency: int, n_hello: int, n_hops: int) -> dict[str, dict]:
    customer = "0" * 64
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency * 2), timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        hello = floors.url("hello") + "/hello"
        hops = floors.url("gateway") + "/floor"
        await run_load(session, lambda i: ("GET", hello, {}), 200, concurrency)  # warm the sockets
        await run_load(session, lambda i: ("GET", hops, {"params": {"customer_id": customer}}), 100, concurrency)
        return {
            "hello": await run_load(
                session, lambda i: ("GET", hello, {}), n_hello, concurrency, service_pids={"hello": floors.pid("hello")}
            ),
            "3 hops": await run_load(
                session,
                lambda i: ("GET", hops, {"params": {"customer_id": customer}}),
                n_hops,
                concurrency,
                service_pids={n: floors.pid(n) for n in ("candidate", "ranker", "gateway")},
            ),
        }


def print_rows(round_no: int, floors: dict[str, dict], product: list[tuple[str, dict]]) -> None:
    print(f"\nround {round_no}: floor and product in one run (concurrency 16 unless told; loopback)")
    print(
        f"{'path':<26}{'requests':>9}{'errors':>7}{'degraded':>9}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'share of its floor':>21}  CPU ms per request, by process"
    )
    rows = [(f"floor: {name}", r, "") for name, r in floors.items()]
    for name, r in product:
        base = floors[FLOOR_OF[name]]
        rows.append((name, r, f"{100 * r['rps'] / base['rps']:.1f} % of {FLOOR_OF[name]}"))
    for name, r, share in rows:
        cpu = r.get("service_cpu_ms") or {}
        cpu_text = " ".join(f"{p} {ms:.1f}" for p, ms in cpu.items()) + (f" = {sum(cpu.values()):.1f}" if cpu else "")
        print(
            f"{name:<26}{r['n']:>9}{r['errors']:>7}{r['degraded']:>9}{r['rps']:>8.0f}{r['p50']:>8.1f}"
            f"{r['p99']:>8.1f}{share:>21}  {cpu_text}"
        )
    print(f"machine load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway-url", help="the product's gateway (a running stack); without it, the floor only")
    parser.add_argument(
        "--service-pids",
        default="",
        help="name=pid,... of the product's processes, for CPU per request (e.g. gateway=12,ranker=13)",
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--hello", type=int, default=3000, help="requests to /hello")
    parser.add_argument("--hops", type=int, default=1500, help="requests through the 3-hop floor")
    parser.add_argument("--cached", type=int, default=3000)
    parser.add_argument("--uncached", type=int, default=1000)
    parser.add_argument("--search", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--serve", choices=["hello", "candidate", "ranker", "gateway"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--candidate-url", help=argparse.SUPPRESS)
    parser.add_argument("--ranker-url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve:
        import uvicorn

        app = floor_app(args.serve, {"candidate": args.candidate_url, "ranker": args.ranker_url})
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
        return
    pids = {name: int(pid) for name, pid in (p.split("=") for p in args.service_pids.split(",") if p)}
    with FloorServices() as floors:
        for round_no in range(1, args.rounds + 1):
            floor = asyncio.run(floor_load(floors, args.concurrency, args.hello, args.hops))
            product: list[tuple[str, dict]] = []
            if args.gateway_url:
                time.sleep(1)
                product = asyncio.run(
                    bench(
                        args.gateway_url.rstrip("/"),
                        args.concurrency,
                        args.cached,
                        args.uncached,
                        args.search,
                        None,
                        pids,
                    )
                )
            print_rows(round_no, floor, product)


if __name__ == "__main__":
    main()
