"""Overload: an open-loop load at a multiple of the sustainable rate; sheds, errors and memory.

1. Calibrate: ``--calibrate-s`` seconds of closed-loop load (``--concurrency`` workers, the
   soak's mix: ``/recommend`` for random customers and k, ``POST /search`` text) give the
   sustainable rate R (answered requests per second).
2. Overload: ``--seconds`` of *open-loop* load at ``--factor`` x R: requests are started on a
   fixed schedule whether or not earlier ones have finished (a real crowd does not wait), as
   long as fewer than ``--max-outstanding`` are open on the client.
3. Reports every status (a 503 with ``Retry-After`` is a deliberate shed; any other 5xx or a
   request with no answer is a failure), latency of the answered requests, and the resident set
   of every service process sampled through the run: "flat" is growth from the middle to the end.

    .venv/bin/python benchmarks/overload.py --work-dir /tmp/hm_work          # starts the stack
    .venv/bin/python benchmarks/overload.py --gateway-url http://127.0.0.1:8000 \
        --service gateway=8000 --service candidate=8001 --service ranker=8002 --service search=8003

Loopback only; what it starts it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from soak import LOOPBACK, MemoryTrace, percentile, pid_listening_on, request_mix


@dataclass
class Result:
    endpoint: str
    status: int  # 0: no answer
    latency_s: float
    shed: bool  # 503 with Retry-After
    degraded: bool
    detail: str = ""


async def one_request(
    session: aiohttp.ClientSession,
    gateway: str,
    customers: list[str],
    queries: list[str],
    share: float,
    rng: random.Random,
    timeout_s: float,
) -> Result:
    started = time.perf_counter()
    if rng.random() < share:
        endpoint = "/recommend"
        call = session.get(
            gateway + endpoint,
            params={"customer_id": rng.choice(customers), "k": rng.randint(1, 40)},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )
    else:
        endpoint = "/search"
        call = session.post(
            gateway + endpoint,
            json={"query": rng.choice(queries), "k": rng.randint(1, 40)},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )
    try:
        async with call as resp:
            body = await resp.read()
            shed = resp.status == 503 and "Retry-After" in resp.headers
            degraded = resp.status == 200 and b'"degraded":[]' not in body and b'"degraded"' in body
            return Result(
                endpoint,
                resp.status,
                time.perf_counter() - started,
                shed,
                degraded,
                "" if resp.status == 200 else body[:160].decode(errors="replace"),
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Result(endpoint, 0, time.perf_counter() - started, False, False, f"{exc.__class__.__name__}: {exc}")


async def closed_loop(
    gateway: str, customers: list[str], queries: list[str], share: float, seconds: float, concurrency: int, seed: int
) -> list[Result]:
    results: list[Result] = []
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(i: int) -> None:
            rng = random.Random(seed * 1000 + i)
            while time.monotonic() < deadline:
                results.append(await one_request(session, gateway, customers, queries, share, rng, 30.0))

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return results


async def open_loop(
    gateway: str,
    customers: list[str],
    queries: list[str],
    share: float,
    seconds: float,
    rate: float,
    max_outstanding: int,
    traces: list[MemoryTrace],
    sample_every: float,
    seed: int,
    timeout_s: float,
) -> tuple[list[Result], int]:
    rng = random.Random(seed)
    results: list[Result] = []
    skipped = 0
    outstanding: set[asyncio.Task[Result]] = set()
    connector = aiohttp.TCPConnector(limit=0)
    t0 = time.monotonic()
    stop = asyncio.Event()

    async def sampler() -> None:
        while not stop.is_set():
            for trace in traces:
                trace.sample(time.monotonic() - t0)
            try:
                await asyncio.wait_for(stop.wait(), sample_every)
            except TimeoutError:
                pass
        for trace in traces:
            trace.sample(time.monotonic() - t0)

    sampling = asyncio.create_task(sampler())
    async with aiohttp.ClientSession(connector=connector) as session:
        i = 0
        while True:
            due = t0 + i / rate
            now = time.monotonic()
            if due - t0 >= seconds:
                break
            if due > now:
                await asyncio.sleep(due - now)
            i += 1
            if len(outstanding) >= max_outstanding:
                skipped += 1  # the client's own bound, reported: the schedule is not met
                continue
            task = asyncio.create_task(one_request(session, gateway, customers, queries, share, rng, timeout_s))
            outstanding.add(task)
            task.add_done_callback(lambda t: (outstanding.discard(t), results.append(t.result())))
        if outstanding:
            await asyncio.wait(outstanding)
    stop.set()
    await sampling
    return results, skipped


def summary(results: list[Result], seconds: float) -> str:
    counts = Counter((r.status, r.shed) for r in results)
    ok = [r for r in results if r.status == 200]
    lines = ["| outcome | requests | share |", "|---|---:|---:|"]
    total = max(len(results), 1)

    def row(label: str, n: int) -> None:
        lines.append(f"| {label} | {n:,} | {n / total:.1%} |")

    row("200", len(ok))
    row("  of which degraded (a fallback served)", sum(r.degraded for r in ok))
    row("503 + Retry-After (shed)", sum(n for (s, shed), n in counts.items() if s == 503 and shed))
    row("503 without Retry-After", sum(n for (s, shed), n in counts.items() if s == 503 and not shed))
    row("other 5xx", sum(n for (s, _), n in counts.items() if s >= 500 and s != 503))
    row("4xx", sum(n for (s, _), n in counts.items() if 400 <= s < 500))
    row("no answer (client timeout / connection)", sum(n for (s, _), n in counts.items() if s == 0))
    lat = [r.latency_s for r in ok]
    shed_lat = [r.latency_s for r in results if r.shed]
    lines.append("")
    lines.append(
        f"{len(results):,} requests in {seconds:.0f} s ({len(results) / seconds:.0f}/s); answered 200: "
        f"{len(ok) / seconds:.0f}/s, p50 {1000 * percentile(lat, 50):.0f} ms, p99 {1000 * percentile(lat, 99):.0f} ms"
        + (
            f"; sheds answered in p50 {1000 * percentile(shed_lat, 50):.0f} ms, "
            f"p99 {1000 * percentile(shed_lat, 99):.0f} ms"
            if shed_lat
            else ""
        )
    )
    return "\n".join(lines)


def memory_rows(traces: list[MemoryTrace]) -> str:
    lines = ["| process | RSS start | RSS middle | RSS end | peak | middle -> end |", "|---|---:|---:|---:|---:|---:|"]
    for t in traces:
        start, mid, end = t.at(0.0), t.at(0.5), t.at(1.0)
        growth = f"{end - mid:+.0f} MB" if end is not None and mid is not None else "-"
        lines.append(
            f"| {t.name} | {start or 0:.0f} MB | {mid or 0:.0f} MB | {end or 0:.0f} MB | {t.peak or 0:.0f} MB "
            f"| {growth} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", type=Path, default=None, help="prepared world + models: start the stack on it")
    ap.add_argument("--gateway-url", default=None, help="a running gateway instead")
    ap.add_argument("--service", action="append", default=[], help="NAME=PORT to watch (with --gateway-url)")
    ap.add_argument("--calibrate-s", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=16, help="closed-loop workers while calibrating")
    ap.add_argument("--factor", type=float, default=4.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--max-outstanding", type=int, default=3000)
    ap.add_argument("--recommend-share", type=float, default=0.5)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--sample-every", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    stack = redis = None
    traces: list[MemoryTrace] = []
    if args.gateway_url:
        gateway = args.gateway_url.rstrip("/")
        if urlparse(gateway).hostname not in LOOPBACK:
            ap.error("loopback only")
        for spec in args.service:
            name, _, port = spec.partition("=")
            pid = pid_listening_on(int(port))
            if pid:
                traces.append(MemoryTrace(name, pid))
    else:
        from e2e.stack import PrivateRedis, Stack, prepare_world

        root = args.work_dir or Path(tempfile.mkdtemp(prefix="hm_overload_"))
        if not (root / ".prepared").exists():
            prepare_world(root, root / "logs")
            (root / ".prepared").write_text("ok")
        redis = PrivateRedis(root / "logs")
        redis.start()
        stack = Stack(data_dir=root / "data", output_dir=root / "output", log_dir=root / "logs", redis_url=redis.url)
        stack.start_all()
        gateway = stack.gateway
        traces = [MemoryTrace(name, p.proc.pid) for name, p in stack.procs.items() if p.proc is not None]
    try:

        async def prepare() -> tuple[list[str], list[str]]:
            async with aiohttp.ClientSession() as session:
                return await request_mix(session, gateway)

        customers, queries = asyncio.run(prepare())
        calib = asyncio.run(
            closed_loop(
                gateway, customers, queries, args.recommend_share, args.calibrate_s, args.concurrency, args.seed
            )
        )
        sustainable = sum(r.status == 200 for r in calib) / args.calibrate_s
        print(
            f"calibration: {len(calib):,} requests in {args.calibrate_s:.0f} s at concurrency {args.concurrency}: "
            f"sustainable {sustainable:.0f} answered/s ({Counter(r.status for r in calib)})",
            flush=True,
        )
        rate = args.factor * sustainable
        print(f"overload: open loop at {rate:.0f} requests/s ({args.factor:g} x) for {args.seconds:.0f} s", flush=True)
        results, skipped = asyncio.run(
            open_loop(
                gateway,
                customers,
                queries,
                args.recommend_share,
                args.seconds,
                rate,
                args.max_outstanding,
                traces,
                args.sample_every,
                args.seed,
                args.timeout,
            )
        )
        print()
        print(summary(results, args.seconds))
        if skipped:
            print(f"(client bound: {skipped:,} scheduled requests not sent, {args.max_outstanding} already open)")
        print()
        print(memory_rows(traces))
        failures = [r for r in results if r.status == 0 or (r.status >= 500 and not r.shed)]
        for r in failures[:8]:
            print(f"  failure: {r.endpoint} {r.status} {r.detail}")
        print(
            f"RESULT: {'PASS' if not failures else 'FAIL'} ({len(failures)} 5xx other than sheds or no answer "
            f"in {len(results):,} requests)"
        )
    finally:
        if stack is not None:
            stack.shutdown()
        if redis is not None:
            redis.stop()


if __name__ == "__main__":
    main()
