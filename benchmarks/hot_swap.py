"""Hot model swap under load, against a running stack: zero failed requests, no stale results.

    .venv/bin/hmrec run &                                   # or `make run`: ports 8000-8003
    .venv/bin/python benchmarks/hot_swap.py                  # defaults: the `make run` ports, output/models
    .venv/bin/python benchmarks/hot_swap.py --gateway-url http://127.0.0.1:8000 --models-dir /x/output/models \
        --concurrency 8 --after 20

What it does (loopback only, bounded by --max-seconds):

1. reads the served versions from the candidate and ranker ``/readyz``;
2. starts ``--concurrency`` client threads on the gateway's ``/recommend`` over a small set of
   (customer, k) pairs, so most answers come from the cache once warm;
3. after ``--warm`` seconds publishes a new ``two_tower`` and ``mmoe`` version: a copy of the
   served version folder under a new name, written with ``shared.artifacts.atomic_model_dir``
   and pointed at with ``publish`` (the same files, a new version: exactly what a retrain
   looks like to a service);
4. watches each service's ``/readyz`` until it serves the new version, then the gateway's
   ``/readyz`` until it reports both, and keeps the load on for ``--after`` seconds;
5. puts the old versions back (unless ``--keep``), waits for the services to swap back, and
   deletes the copies.

Checks: no request failed (HTTP status other than 200, or no answer), and every answer to a
request sent after the gateway reported the new versions carries the new versions (cache keys
carry versions, so an old cached answer must never be served for the new model). Exit code 1
if either check fails. Prints a table per phase. The "gateway lag" phase (both services already
serve the new version, the gateway's /readyz poll has not seen it yet: at most one
``HM_GATEWAY_HEALTH_INTERVAL_S``) may still answer from the old versions' cache entries; its
answers are reported, not failed.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.artifacts import (  # noqa: E402
    METADATA_FILE,
    atomic_model_dir,
    publish,
    read_metadata,
    resolve_version,
)

# Which service serves which model folder, and the metadata keys the copy must not inherit
# (atomic_model_dir writes name/version/created_at afresh).
SWAPPED = {"candidate": "two_tower", "ranker": "mmoe"}
PHASES = ("before publish", "swapping", "gateway lag", "after switch")
FRESH_KEYS = ("name", "version", "created_at")


@dataclass
class Sample:
    started: float  # time.monotonic() when sent
    latency_s: float
    status: int  # 0: no HTTP answer
    candidate: str | None  # model_versions in the answer
    ranker: str | None
    cached: bool | None
    source: str | None
    error: str | None = None


class RecommendLoad:
    """``concurrency`` threads sending GET /recommend for a cycle of (customer, k) pairs."""

    def __init__(
        self,
        gateway_url: str,
        customers: list[str],
        concurrency: int,
        ks: tuple[int, ...] = (12, 6),
        timeout_s: float = 15.0,
        pause_s: float = 0.0,
    ) -> None:
        self.gateway_url = gateway_url
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.pause_s = pause_s
        self._pairs = itertools.cycle([(c, k) for k in ks for c in customers])
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.samples: list[Sample] = []

    def _worker(self) -> None:
        with httpx.Client(base_url=self.gateway_url, timeout=self.timeout_s) as client:
            while not self._stop.is_set():
                with self._lock:
                    customer, k = next(self._pairs)
                started = time.monotonic()
                try:
                    r = client.get("/recommend", params={"customer_id": customer, "k": k})
                    body: dict[str, Any] = r.json() if r.status_code == 200 else {}
                    versions = body.get("model_versions") or {}
                    sample = Sample(
                        started,
                        time.monotonic() - started,
                        r.status_code,
                        versions.get("candidate"),
                        versions.get("ranker"),
                        body.get("cached"),
                        body.get("source"),
                        None if r.status_code == 200 else r.text[:200],
                    )
                except (httpx.HTTPError, ValueError) as exc:
                    sample = Sample(started, time.monotonic() - started, 0, None, None, None, None, repr(exc)[:200])
                with self._lock:
                    self.samples.append(sample)
                if self.pause_s:
                    time.sleep(self.pause_s)

    def __enter__(self) -> RecommendLoad:
        for i in range(self.concurrency):
            t = threading.Thread(target=self._worker, name=f"hot-swap-load-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout_s + 5)


# --- publishing ----------------------------------------------------------------------------------


def publish_copy(models_dir: Path, name: str, new_version: str) -> tuple[str, str]:
    """Copy the served version of ``name`` to ``new_version`` (atomically) and publish it.

    Returns (old version, new version)."""
    old = resolve_version(models_dir, name)
    source = Path(models_dir) / name / old
    meta = {k: v for k, v in read_metadata(source).items() if k not in FRESH_KEYS}
    meta["copied_from"] = old
    with atomic_model_dir(models_dir, name, new_version, meta) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(METADATA_FILE))
    publish(models_dir, name, new_version)
    return old, new_version


def served_version(url: str, timeout_s: float = 2.0) -> str | None:
    try:
        r = httpx.get(url + "/readyz", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    return r.json().get("model_version") if r.status_code == 200 else None


def gateway_versions(url: str, timeout_s: float = 2.0) -> dict[str, str | None]:
    try:
        body = httpx.get(url + "/readyz", timeout=timeout_s).json()
    except (httpx.HTTPError, ValueError):
        return {}
    deps = body.get("dependencies") or {}
    return {name: (deps.get(name) or {}).get("model_version") for name in SWAPPED}


def wait_for(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> float | None:
    """time.monotonic() when ``check()`` first held, or None after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(interval_s)
    return None


# --- the experiment --------------------------------------------------------------------------------


@dataclass
class HotSwapResult:
    old: dict[str, str]  # service -> version before
    new: dict[str, str]  # service -> published version
    published_at: float
    service_swapped_at: dict[str, float | None]
    gateway_switched_at: float | None
    samples: list[Sample]
    restored: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def services_swapped_at(self) -> float | None:
        times = list(self.service_swapped_at.values())
        return None if not times or None in times else max(t for t in times if t is not None)

    def phase(self, s: Sample) -> str:
        """before publish -> swapping (services loading) -> gateway lag (services switched, the
        gateway's version poll not yet) -> after switch."""
        if s.started < self.published_at:
            return "before publish"
        if self.gateway_switched_at is None or s.started < self.gateway_switched_at:
            swapped = self.services_swapped_at
            return "gateway lag" if swapped is not None and s.started >= swapped else "swapping"
        return "after switch"

    def is_new(self, s: Sample) -> bool:
        return s.candidate == self.new["candidate"] and s.ranker == self.new["ranker"]

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if s.status != 200]

    @property
    def stale_after_switch(self) -> list[Sample]:
        """Answers to requests sent after the gateway saw the new versions that carry old ones."""
        return [s for s in self.samples if s.status == 200 and self.phase(s) == "after switch" and not self.is_new(s)]

    @property
    def ok(self) -> bool:
        return (
            not self.failed
            and not self.stale_after_switch
            and self.gateway_switched_at is not None
            and any(self.phase(s) == "after switch" for s in self.samples)
        )


def run_hot_swap(
    gateway_url: str,
    service_urls: dict[str, str],
    models_dir: Path,
    concurrency: int = 8,
    warm_s: float = 3.0,
    after_s: float = 10.0,
    swap_timeout_s: float = 60.0,
    customers: list[str] | None = None,
    keep: bool = False,
    echo: Callable[[str], None] = print,
) -> HotSwapResult:
    """Publish copies of the served two_tower and mmoe versions under load; see the module docstring."""
    models_dir = Path(models_dir)
    old: dict[str, str] = {}
    for svc, url in service_urls.items():
        version = served_version(url)
        if version is None:
            raise RuntimeError(f"{svc} at {url} is not ready; start the stack first")
        old[svc] = version
        if version != resolve_version(models_dir, SWAPPED[svc]):
            raise RuntimeError(
                f"{svc} serves {version}, but {models_dir / SWAPPED[svc]} CURRENT is "
                f"{resolve_version(models_dir, SWAPPED[svc])}: wrong --models-dir?"
            )
    if customers is None:
        r = httpx.get(gateway_url + "/customers", params={"limit": 16}, timeout=10)
        r.raise_for_status()
        customers = [c["customer_id"] for c in r.json()]
    if not customers:
        raise RuntimeError("the gateway offered no customers to ask for")
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    new: dict[str, str] = {}
    swapped_at: dict[str, float | None] = {}
    with RecommendLoad(gateway_url, customers, concurrency) as load:
        time.sleep(warm_s)
        published_at = time.monotonic()
        try:
            for svc, name in SWAPPED.items():
                _, new[svc] = publish_copy(models_dir, name, f"{old[svc]}-hotswap-{stamp}")
                echo(f"published {name} {new[svc]} (copy of {old[svc]})")
        except BaseException:
            for svc in new:  # never leave a half-done swap published
                publish(models_dir, SWAPPED[svc], old[svc])
            raise
        for svc, url in service_urls.items():
            at = wait_for(
                lambda u=url, v=new[svc]: served_version(u) == v,  # type: ignore[misc]
                swap_timeout_s,
            )
            swapped_at[svc] = at
            if at is not None:
                echo(f"{svc} serves {new[svc]} {at - published_at:.1f}s after publishing")
        gateway_at = wait_for(lambda: gateway_versions(gateway_url) == new, swap_timeout_s)
        if gateway_at is not None:
            echo(f"gateway reports both new versions {gateway_at - published_at:.1f}s after publishing")
        time.sleep(after_s)
    result = HotSwapResult(old, new, published_at, swapped_at, gateway_at, load.samples)
    if not keep:
        result.restored = restore(models_dir, service_urls, old, new, swap_timeout_s, result.notes)
    return result


def restore(
    models_dir: Path,
    service_urls: dict[str, str],
    old: dict[str, str],
    new: dict[str, str],
    timeout_s: float,
    notes: list[str],
) -> bool:
    """Point CURRENT back at the old versions; delete the copies once nothing serves them."""
    for svc, name in SWAPPED.items():
        publish(models_dir, name, old[svc])
    back = all(
        wait_for(lambda u=url, v=old[svc]: served_version(u) == v, timeout_s) is not None  # type: ignore[misc]
        for svc, url in service_urls.items()
    )
    if back:
        for svc, name in SWAPPED.items():
            shutil.rmtree(Path(models_dir) / name / new[svc], ignore_errors=True)
    else:
        notes.append("services did not swap back in time: the copies were kept")
    return back


# --- reporting -----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def format_table(result: HotSwapResult) -> str:
    header = f"{'phase':<15} {'requests':>8} {'failed':>6} {'cached':>7} {'p50 ms':>7} {'p99 ms':>7}  versions seen (candidate / ranker: answers)"
    lines = [header, "-" * len(header)]
    for phase in PHASES:
        rows = [s for s in result.samples if result.phase(s) == phase]
        ok = [s for s in rows if s.status == 200]
        seen: dict[tuple[str | None, str | None], int] = {}
        for s in ok:
            seen[(s.candidate, s.ranker)] = seen.get((s.candidate, s.ranker), 0) + 1
        versions = ", ".join(f"{c} / {r}: {n}" for (c, r), n in sorted(seen.items(), key=lambda kv: -kv[1]))
        cached = sum(1 for s in ok if s.cached)
        lat = [s.latency_s * 1000 for s in ok]
        lines.append(
            f"{phase:<15} {len(rows):>8} {len(rows) - len(ok):>6} {cached:>7} "
            f"{percentile(lat, 50):>7.1f} {percentile(lat, 99):>7.1f}  {versions or '-'}"
        )
    swap = ", ".join(
        f"{svc} {'never' if t is None else f'{t - result.published_at:.1f}s'}"
        for svc, t in result.service_swapped_at.items()
    )
    gw = "never" if result.gateway_switched_at is None else f"{result.gateway_switched_at - result.published_at:.1f}s"
    lines += [
        f"swap after publish: {swap}; gateway reported both {gw}",
        f"failed requests: {len(result.failed)}; stale answers after the switch: {len(result.stale_after_switch)} "
        f"(of which cached: {sum(1 for s in result.stale_after_switch if s.cached)})",
    ]
    for s in result.failed[:5]:
        lines.append(f"  failed: status {s.status} {s.error}")
    for s in result.stale_after_switch[:5]:
        lines.append(f"  stale: {s.candidate} / {s.ranker} cached={s.cached} source={s.source}")
    if result.restored is not None:
        lines.append(
            "old versions restored, copies deleted" if result.restored else "restore: " + "; ".join(result.notes)
        )
    lines.append("RESULT: " + ("PASS" if result.ok else "FAIL"))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway-url", default="http://127.0.0.1:8000")
    ap.add_argument("--candidate-url", default="http://127.0.0.1:8001")
    ap.add_argument("--ranker-url", default="http://127.0.0.1:8002")
    ap.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("HM_OUTPUT_DIR", "output")) / "models",
        help="the models folder the running services read (default: $HM_OUTPUT_DIR/models or output/models)",
    )
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--warm", type=float, default=3.0, help="seconds of load before publishing")
    ap.add_argument("--after", type=float, default=15.0, help="seconds of load after the gateway switched")
    ap.add_argument("--swap-timeout", type=float, default=90.0, help="most seconds to wait for each swap")
    ap.add_argument("--keep", action="store_true", help="leave the new versions published")
    args = ap.parse_args()
    if not 1 <= args.concurrency <= 64:
        ap.error("--concurrency must be 1..64")
    urls = {"candidate": args.candidate_url.rstrip("/"), "ranker": args.ranker_url.rstrip("/")}
    result = run_hot_swap(
        args.gateway_url.rstrip("/"),
        urls,
        args.models_dir,
        args.concurrency,
        args.warm,
        args.after,
        args.swap_timeout,
        keep=args.keep,
    )
    print(format_table(result))
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
