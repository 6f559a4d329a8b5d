"""POST /events under load, a soak with a Redis restart in the middle, and /recommend with vs
without a session; prints three tables.

    .venv/bin/python benchmarks/events_load.py                       # self-contained (below)
    .venv/bin/python benchmarks/events_load.py --soak-s 60 --concurrency 16

Self-contained: a synthetic ``tiny`` world (or ``--data-dir``), the fake candidate / ranker /
search services of ``bench_gateway.py`` as processes, a private ``redis-server`` on a free port
(append-only file, so a restart keeps what it had, as a Redis holding events must), the real
gateway as a uvicorn process, and the real drain worker (``hmrec events drain --follow``).

1. Throughput: ``--concurrency`` workers POST batches of 1 and of 10 events for
   ``--throughput-s`` seconds each (goal: >= 1,000 events/s at concurrency 16 on 2 cores).
2. Soak: the same load for ``--soak-s`` seconds with batches of 5; Redis is stopped (SIGTERM)
   at one third and started again at two thirds. Every 202 counts as sent. At the end, once the
   gateway's buffer is flushed and the worker has drained the stream, the ledger must close:
   sent == accepted == written (gateway counters) == rows in ``events/*.parquet`` (distinct
   uids), lost = sent - rows = 0. 503s (buffer full) are refusals the client saw, not losses.
3. /recommend latency, uncached (a unique no-op ``price_max`` per request), for customers with
   a 5-event session and for the same number without one (the gateway's extra work: one LRANGE,
   the weighting, a bigger /candidates body; with fakes the candidate service's own extra work
   for ``recent_article_ids`` is not in it: run with ``--gateway-url`` on a real stack for that).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from bench_gateway import free_port, wait_ready  # noqa: E402

from pipeline.supervisor import events_drain_cmd  # noqa: E402

EVENT_TYPES = ("view", "view", "view", "click", "click", "cart")


class PrivateRedis:
    def __init__(self, folder: Path) -> None:
        self.port, self.folder, self.proc = free_port(), folder, None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        import redis

        for _ in range(200):
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None


class Stack:
    """Fakes + private Redis + the real gateway + the drain worker, stopped by their own pids."""

    def __init__(self, data_dir: Path | None) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="events_load_")
        root = Path(self.tmp.name)
        self.data_dir = data_dir or root / "data"
        self.output_dir = root / "output"
        self.redis = PrivateRedis(root)
        self.prefix = f"hm:bench-ev:{uuid.uuid4().hex[:8]}"
        self.procs: list[subprocess.Popen] = []
        self.gateway_pid: int | None = None

    def _spawn(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True)
        self.procs.append(proc)
        return proc

    def __enter__(self) -> str:
        if not (self.data_dir / "articles.csv").exists():
            from pipeline.synthetic import generate_world

            generate_world(self.data_dir, scale="tiny", seed=0, images=False)
        self.redis.start()
        ports = {name: free_port() for name in ("candidate", "ranker", "search", "gateway")}
        for name in ("candidate", "ranker", "search"):
            self._spawn(
                [
                    sys.executable,
                    str(HERE / "bench_gateway.py"),
                    "--serve-fake",
                    name,
                    "--port",
                    str(ports[name]),
                    "--data-dir",
                    str(self.data_dir),
                ]
            )
        env = dict(
            os.environ,
            HM_EVENTS_PREFIX=self.prefix,
            HM_GATEWAY_LOG_LEVEL="WARNING",
            HM_GATEWAY_REDIS_URL=f"redis://127.0.0.1:{self.redis.port}/0",
            HM_GATEWAY_CACHE_PREFIX=f"hm:bench:{uuid.uuid4().hex[:8]}",
            HM_GATEWAY_DATA_DIR=str(self.data_dir),
            HM_GATEWAY_OUTPUT_DIR=str(self.output_dir),
            **{
                f"HM_GATEWAY_{n.upper()}_URL": f"http://127.0.0.1:{ports[n]}" for n in ("candidate", "ranker", "search")
            },
        )
        self.gateway_pid = self._spawn(
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
            env,
        ).pid
        self._spawn(
            [
                *events_drain_cmd(self.output_dir, f"redis://127.0.0.1:{self.redis.port}/0"),
                "--prefix",
                self.prefix,
            ],
            dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        url = f"http://127.0.0.1:{ports['gateway']}"
        wait_ready(url, self.procs)
        return url

    def __exit__(self, *exc: object) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.redis.stop()
        self.tmp.cleanup()


def make_batch(rng: random.Random, customers: list[str], articles: list[str], size: int) -> dict:
    customer = rng.choice(customers)
    return {
        "events": [
            {"customer_id": customer, "article_id": rng.choice(articles), "type": rng.choice(EVENT_TYPES)}
            for _ in range(size)
        ]
    }


class Ledger:
    def __init__(self) -> None:
        self.sent = self.redis = self.buffered = self.refused = self.errors = 0
        self.latencies: list[float] = []


async def post_load(
    session: aiohttp.ClientSession,
    url: str,
    customers: list[str],
    articles: list[str],
    batch: int,
    concurrency: int,
    seconds: float,
) -> tuple[Ledger, float]:
    """``concurrency`` workers posting batches for ``seconds``; (ledger, wall seconds)."""
    ledger = Ledger()
    stop_at = time.perf_counter() + seconds

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        while time.perf_counter() < stop_at:
            body = make_batch(rng, customers, articles, batch)
            started = time.perf_counter()
            try:
                async with session.post(url + "/events", json=body) as resp:
                    answer = await resp.json(content_type=None)
                    if resp.status == 202:
                        ledger.sent += answer["accepted"]
                        if answer["stored"] == "redis":
                            ledger.redis += answer["accepted"]
                        else:
                            ledger.buffered += answer["accepted"]
                    elif resp.status == 503:
                        ledger.refused += batch
                        await asyncio.sleep(0.05)
                    else:
                        ledger.errors += 1
            except (aiohttp.ClientError, ValueError):
                ledger.errors += 1
            ledger.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return ledger, time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")


async def counters(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(url + "/metrics") as r:
        text = await r.text()
    out = {}
    for line in text.splitlines():
        if line.startswith("hm_gateway_events_total{"):
            out[line.split('"')[1]] = float(line.split()[-1])
        elif line.startswith("hm_gateway_events_buffered_now"):
            out["buffered_now"] = float(line.split()[-1])
    return out


async def soak(
    session: aiohttp.ClientSession,
    url: str,
    stack: Stack,
    customers: list[str],
    articles: list[str],
    concurrency: int,
    seconds: float,
) -> dict:
    """The load with Redis stopped from 1/3 to 2/3 of the run; then the ledger."""

    async def restart() -> None:
        await asyncio.sleep(seconds / 3)
        await asyncio.to_thread(stack.redis.stop)
        await asyncio.sleep(seconds / 3)
        await asyncio.to_thread(stack.redis.start)

    (ledger, _wall), _ = await asyncio.gather(
        post_load(session, url, customers, articles, 5, concurrency, seconds), restart()
    )
    deadline = time.monotonic() + 60
    while (await counters(session, url)).get("buffered_now", 1) > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    import redis

    client = redis.Redis(port=stack.redis.port)
    while client.xlen(f"{stack.prefix}:stream") > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    # The worker renames a batch's file into place before it deletes the batch from the stream,
    # so an empty stream means every file is there.
    from pipeline.event_drain import read_events

    rows = len(read_events(stack.output_dir / "events"))
    return {"ledger": ledger, "counters": await counters(session, url), "rows": rows}


async def recommend_latency(
    session: aiohttp.ClientSession, url: str, customers: list[str], articles: list[str], n: int, concurrency: int
) -> dict[str, dict]:
    """Uncached /recommend for customers with a 5-event session vs customers without one."""
    half = len(customers) // 2
    with_session, without = customers[:half], customers[half:]
    rng = random.Random(7)
    for c in with_session:
        async with session.post(
            url + "/events",
            json={
                "events": [{"customer_id": c, "article_id": rng.choice(articles), "type": "click"} for _ in range(5)]
            },
        ) as r:
            assert r.status == 202, await r.text()
    out = {}
    for name, group in (("with a session", with_session), ("without", without)):
        started = time.perf_counter()
        latencies = await timed_recommends(session, url, group, n, concurrency, name == "with a session")
        out[name] = {
            "n": n,
            "rps": n / (time.perf_counter() - started),
            "p50": pct(latencies, 0.5),
            "p99": pct(latencies, 0.99),
        }
    return out


async def timed_recommends(
    session: aiohttp.ClientSession, url: str, group: list[str], n: int, concurrency: int, expect_session: bool
) -> list[float]:
    nonce = random.Random()  # unseeded: a rerun within the cache TTL must not hit earlier keys
    latencies: list[float] = []
    mismatched: list[int] = []  # answers whose session was not the expected one (should stay empty)
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            params = {"customer_id": group[i % len(group)], "price_max": f"{1000 + nonce.random():.12f}"}
            started = time.perf_counter()
            async with session.get(url + "/recommend", params=params) as r:
                body = await r.json()
                assert r.status == 200 and not body["cached"], body
                if (body["session"] is not None) != expect_session:
                    mismatched.append(i)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if mismatched:
        print(f"warning: {len(mismatched)} of {n} answers did not show the expected session state", file=sys.stderr)
    return latencies


async def run(url: str, stack: Stack | None, args: argparse.Namespace) -> None:
    connector = aiohttp.TCPConnector(limit=args.concurrency * 2)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.get(url + "/customers", params={"limit": 50}) as r:
            sample = [c["customer_id"] for c in await r.json()]
        # The load phases use the first 20; the latency phase the others (untouched by the load).
        customers, untouched = sample[:20], sample[20:]
        async with session.get(url + "/recommend", params={"customer_id": customers[0], "k": 100}) as r:
            articles = [i["article_id"] for i in (await r.json())["items"]]
        print(
            f"\n/events throughput (concurrency {args.concurrency}, {args.throughput_s:.0f} s each; goal >= 1,000 events/s)"
        )
        print(f"{'batch':>6}{'requests':>10}{'events/s':>10}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}")
        sent_before_soak = 0
        for batch in (1, 10):
            ledger, wall = await post_load(
                session, url, customers, articles, batch, args.concurrency, args.throughput_s
            )
            sent_before_soak += ledger.sent
            print(
                f"{batch:>6}{len(ledger.latencies):>10}{ledger.sent / wall:>10.0f}{len(ledger.latencies) / wall:>8.0f}"
                f"{pct(ledger.latencies, 0.5):>8.1f}{pct(ledger.latencies, 0.99):>8.1f}{ledger.errors:>7}"
            )
        if stack is not None:
            result = await soak(session, url, stack, customers, articles, args.concurrency, args.soak_s)
            ledger, c = result["ledger"], result["counters"]
            total = sent_before_soak + ledger.sent
            print(
                f"\nsoak: {args.soak_s:.0f} s, batches of 5, Redis stopped from {args.soak_s / 3:.0f} s to "
                f"{2 * args.soak_s / 3:.0f} s; the ledger covers the whole run ({sent_before_soak} events sent before the soak)"
            )
            print(
                f"{'soak sent':>10}{'to redis':>9}{'buffered':>9}{'refused 503':>12}{'errors':>7}{'run sent':>9}"
                f"{'accepted':>9}{'written':>8}{'dropped':>8}{'parquet rows':>13}{'lost':>6}"
            )
            print(
                f"{ledger.sent:>10}{ledger.redis:>9}{ledger.buffered:>9}{ledger.refused:>12}{ledger.errors:>7}{total:>9}"
                f"{c.get('accepted', 0):>9.0f}{c.get('written', 0):>8.0f}{c.get('dropped', 0):>8.0f}"
                f"{result['rows']:>13}{total - result['rows']:>6}"
            )
        lat = await recommend_latency(session, url, untouched, articles, args.recommend_n, args.concurrency)
        print(f"\n/recommend uncached, concurrency {args.concurrency}")
        print(f"{'customers':<16}{'requests':>9}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}")
        for name, r in lat.items():
            print(f"{name:<16}{r['n']:>9}{r['rps']:>8.0f}{r['p50']:>8.1f}{r['p99']:>8.1f}")
    print(f"machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway-url", help="a running stack instead (no soak: it restarts its own Redis)")
    parser.add_argument("--data-dir", type=Path, help="self-contained: a data folder (default: a tiny world)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--throughput-s", type=float, default=10.0)
    parser.add_argument("--soak-s", type=float, default=30.0)
    parser.add_argument("--recommend-n", type=int, default=400)
    args = parser.parse_args()
    if args.gateway_url:
        asyncio.run(run(args.gateway_url.rstrip("/"), None, args))
        return
    if shutil.which("redis-server") is None:
        sys.exit("needs redis-server (apt-get install redis-server)")
    stack = Stack(args.data_dir)
    with stack as url:
        print(f"self-contained: real gateway + drain worker, fake services, private Redis :{stack.redis.port}")
        asyncio.run(run(url, stack, args))


if __name__ == "__main__":
    main()
