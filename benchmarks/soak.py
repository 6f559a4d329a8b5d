"""Soak: minutes of mixed /recommend and /search text traffic on a running stack; errors and memory.

    .venv/bin/hmrec run &                                     # or `make run`: ports 8000-8003
    .venv/bin/python benchmarks/soak.py                        # 5 minutes, concurrency 32
    .venv/bin/python benchmarks/soak.py --minutes 1 --concurrency 16 --gateway-url http://127.0.0.1:8000 \
        --service candidate=8001 --service ranker=8002 --service search=8003 --service gateway=8000

Load (loopback only, stops by itself after ``--minutes``): ``--concurrency`` aiohttp workers, each
request ``/recommend`` (share ``--recommend-share``, a random sample customer and k in 1..40, so
most are computed and some come from the cache) or ``POST /search`` with a text query built from
the catalogue's facets ("black dress") and a random k.

Memory: the resident set (VmRSS) of each service process, found by the port it listens on
(``/proc/net/tcp`` socket inode -> ``/proc/<pid>/fd``; ``--pid name=PID`` overrides), read at the
start, every ``--sample-every`` seconds and at the end. "Flat" is judged on the second half of
the run (after warm-up: caches, allocator pools): growth from the middle to the end.

Prints two tables (requests per endpoint; RSS per process) and exits 1 on any error response.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_SERVICES = {"gateway": 8000, "candidate": 8001, "ranker": 8002, "search": 8003}
FALLBACK_WORDS = [
    "dress",
    "black dress",
    "trousers",
    "denim shorts",
    "white t-shirt",
    "sweater",
    "skirt",
    "blue jeans",
    "bikini top",
    "jacket",
    "socks",
    "hoodie",
]


# --- processes and memory --------------------------------------------------------------------------


def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on ``port`` (IPv4 and IPv6), from /proc/net/tcp{,6}."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(inode)
    return inodes


def pid_listening_on(port: int) -> int | None:
    """The pid owning the listening socket on ``port`` (lowest pid if several share it)."""
    wanted = {f"socket:[{i}]" for i in listening_inodes(port)}
    if not wanted:
        return None
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    found.append(int(entry.name))
                    break
        except OSError:  # gone, or not ours to read
            continue
    return min(found) if found else None


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    except OSError:
        return None
    return None


@dataclass
class MemoryTrace:
    name: str
    pid: int
    samples: list[tuple[float, float | None]] = field(default_factory=list)  # (seconds since start, MiB)

    def sample(self, t: float) -> None:
        self.samples.append((t, rss_mb(self.pid)))

    def at(self, fraction: float) -> float | None:
        if not self.samples:
            return None
        end = self.samples[-1][0]
        return min(self.samples, key=lambda s: abs(s[0] - fraction * end))[1]

    @property
    def alive(self) -> bool:
        return bool(self.samples) and self.samples[-1][1] is not None

    @property
    def peak(self) -> float | None:
        values = [v for _, v in self.samples if v is not None]
        return max(values) if values else None


# --- load ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    endpoint: str
    status: int  # 0: no HTTP answer
    latency_s: float
    detail: str = ""


async def _fetch_json(session: aiohttp.ClientSession, url: str, **params: str | int) -> Any:
    async with session.get(url, params=params) as r:
        r.raise_for_status()
        return await r.json()


async def request_mix(session: aiohttp.ClientSession, gateway: str) -> tuple[list[str], list[str]]:
    """(customer ids, text queries) from the gateway's own catalogue routes."""
    # The sample of active customers plus up to 50 per first hex digit: a few hundred ids.
    customers = {c["customer_id"] for c in await _fetch_json(session, gateway + "/customers", limit=50)}
    for digit in "0123456789abcdef":
        customers |= {
            c["customer_id"] for c in await _fetch_json(session, gateway + "/customers", prefix=digit, limit=50)
        }
    queries: list[str] = []
    try:
        facets = (await _fetch_json(session, gateway + "/facets"))["facets"]  # {column: [{value, count}]}
        values = {k: [v["value"] for v in vals][:8] for k, vals in facets.items()}
        colours = values.get("colour_group_name", [])
        types = values.get("product_type_name", [])
        queries = [f"{c} {t}".lower() for c, t in itertools.product(colours, types)]
    except (aiohttp.ClientError, ValueError, TypeError, KeyError):
        pass
    return sorted(customers), queries or FALLBACK_WORDS


async def worker(
    session: aiohttp.ClientSession,
    gateway: str,
    customers: list[str],
    queries: list[str],
    share: float,
    stop_at: float,
    rng: random.Random,
    out: list[Outcome],
) -> None:
    while time.monotonic() < stop_at:
        started = time.monotonic()
        if rng.random() < share:
            endpoint = "/recommend"
            ctx = session.get(
                gateway + "/recommend", params={"customer_id": rng.choice(customers), "k": rng.randint(1, 40)}
            )
        else:
            endpoint = "/search text"
            ctx = session.post(gateway + "/search", json={"query": rng.choice(queries), "k": rng.randint(1, 40)})
        try:
            async with ctx as r:
                body = await r.read()
                out.append(
                    Outcome(
                        endpoint,
                        r.status,
                        time.monotonic() - started,
                        "" if r.status == 200 else body[:200].decode(errors="replace"),
                    )
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            out.append(Outcome(endpoint, 0, time.monotonic() - started, repr(exc)[:200]))


async def soak(
    gateway: str,
    traces: list[MemoryTrace],
    seconds: float,
    concurrency: int,
    share: float,
    sample_every: float,
    seed: int,
    timeout_s: float,
) -> tuple[list[Outcome], float]:
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(limit=concurrency)
    outcomes: list[Outcome] = []
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        customers, queries = await request_mix(session, gateway)
        if not customers:
            raise RuntimeError("the gateway offered no customers")
        started = time.monotonic()
        for t in traces:
            t.sample(0.0)
        stop_at = started + seconds
        rng = random.Random(seed)
        tasks = [
            asyncio.create_task(
                worker(session, gateway, customers, queries, share, stop_at, random.Random(rng.random()), outcomes)
            )
            for _ in range(concurrency)
        ]
        next_report = started + 30
        while time.monotonic() < stop_at:
            await asyncio.sleep(min(sample_every, max(0.0, stop_at - time.monotonic())))
            now = time.monotonic()
            for t in traces:
                t.sample(now - started)
            if now >= next_report:
                errors = sum(1 for o in outcomes if o.status != 200)
                print(
                    f"  {now - started:5.0f}s: {len(outcomes):,} requests, {errors} errors, RSS "
                    + ", ".join(f"{t.name} {t.samples[-1][1] or 0:.0f}" for t in traces),
                    flush=True,
                )
                next_report = now + 30
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
        for t in traces:
            t.sample(elapsed)
    return outcomes, elapsed


# --- report ----------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def request_table(outcomes: list[Outcome], elapsed: float) -> str:
    lines = [
        f"{'endpoint':<13} {'requests':>9} {'req/s':>7} {'errors':>7} {'5xx':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    ]
    for endpoint in ("/recommend", "/search text", "all"):
        rows = [o for o in outcomes if endpoint == "all" or o.endpoint == endpoint]
        lat = [o.latency_s * 1000 for o in rows]
        errors = sum(1 for o in rows if o.status != 200)
        five = sum(1 for o in rows if o.status >= 500)
        lines.append(
            f"{endpoint:<13} {len(rows):>9,} {len(rows) / elapsed:>7.1f} {errors:>7} {five:>5} "
            f"{percentile(lat, 50):>8.1f} {percentile(lat, 99):>8.1f} {max(lat, default=float('nan')):>8.1f}"
        )
    return "\n".join(lines)


def memory_table(traces: list[MemoryTrace]) -> str:
    def mb(v: float | None) -> str:
        return "gone" if v is None else f"{v:.0f}"

    lines = [
        f"{'process':<10} {'pid':>7} {'start MiB':>10} {'mid MiB':>8} {'end MiB':>8} {'peak MiB':>9} "
        f"{'end-start':>10} {'end-mid':>8}"
    ]
    for t in traces:
        start, mid, end = t.at(0.0), t.at(0.5), t.at(1.0)
        growth = f"{end - start:+.0f}" if start is not None and end is not None else "-"
        late = f"{end - mid:+.0f}" if mid is not None and end is not None else "-"
        lines.append(
            f"{t.name:<10} {t.pid:>7} {mb(start):>10} {mb(mid):>8} {mb(end):>8} {mb(t.peak):>9} {growth:>10} {late:>8}"
        )
    return "\n".join(lines)


def _pairs(values: list[str], what: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        name, sep, number = v.partition("=")
        if not sep or not number.isdigit():
            raise SystemExit(f"--{what} expects NAME=NUMBER, got {v!r}")
        out[name] = int(number)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway-url", default="http://127.0.0.1:8000")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--recommend-share", type=float, default=0.5, help="share of requests to /recommend")
    ap.add_argument(
        "--service",
        action="append",
        default=[],
        help="NAME=PORT of a process to watch (repeatable; default the `make run` ports 8000-8003)",
    )
    ap.add_argument("--pid", action="append", default=[], help="NAME=PID, instead of finding it by port")
    ap.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS readings")
    ap.add_argument("--timeout", type=float, default=30.0, help="client timeout per request, seconds")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    gateway = args.gateway_url.rstrip("/")
    host = urlparse(gateway).hostname or ""
    if host not in LOOPBACK:
        ap.error(f"loopback only: {host!r} is not 127.0.0.1/localhost/::1")
    if not 0 < args.minutes <= 60:
        ap.error("--minutes must be in (0, 60]")
    if not 1 <= args.concurrency <= 256:
        ap.error("--concurrency must be 1..256")
    if not 0.0 <= args.recommend_share <= 1.0:
        ap.error("--recommend-share must be in [0, 1]")

    pids = _pairs(args.pid, "pid")
    ports = _pairs(args.service, "service") if args.service else dict(DEFAULT_SERVICES)
    traces: list[MemoryTrace] = []
    for name, port in ports.items():
        pid = pids.pop(name, None) or pid_listening_on(port)
        if pid is None:
            print(
                f"warning: nothing listens on port {port} ({name}) that this user can see; not watched", file=sys.stderr
            )
            continue
        traces.append(MemoryTrace(name, pid))
    traces += [MemoryTrace(name, pid) for name, pid in pids.items()]

    print(
        f"soak: {args.minutes:g} min, concurrency {args.concurrency}, {args.recommend_share:.0%} /recommend, "
        f"rest /search text, on {gateway}; watching " + ", ".join(f"{t.name}={t.pid}" for t in traces),
        flush=True,
    )
    outcomes, elapsed = asyncio.run(
        soak(
            gateway,
            traces,
            args.minutes * 60,
            args.concurrency,
            args.recommend_share,
            args.sample_every,
            args.seed,
            args.timeout,
        )
    )
    print()
    print(request_table(outcomes, elapsed))
    print()
    print(memory_table(traces))
    errors = [o for o in outcomes if o.status != 200]
    for o in errors[:10]:
        print(f"  error: {o.endpoint} status {o.status} {o.detail}")
    gone = [t.name for t in traces if not t.alive]
    if gone:
        print(f"processes gone during the soak: {', '.join(gone)}")
    print(
        "RESULT: "
        + ("PASS" if not errors and not gone else "FAIL")
        + f" ({len(errors)} errors in {len(outcomes):,} requests)"
    )
    sys.exit(0 if not errors and not gone else 1)


if __name__ == "__main__":
    main()
