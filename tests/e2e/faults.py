"""Fault injection under a steady load: what was broken, what the gateway did, how fast it healed.

``SteadyLoad`` keeps ``concurrency`` client threads sending ``/recommend`` requests, each for
a customer/k pair never asked before (so every answer is computed, not cached), and records
every outcome. ``run_fault`` measures a baseline window, injects a fault, measures the fault
window, removes the fault and measures how long until the normal path serves again.

Used by ``test_fault_injection.py`` (short windows) and ``benchmarks/fault_table.py`` (longer).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx


@dataclass
class Sample:
    started: float  # time.monotonic() when the request was sent
    latency_s: float
    status: int  # 0: no HTTP answer (connection error, client timeout)
    source: str | None
    cached: bool | None
    error: str | None = None


class SteadyLoad:
    """A bounded, steady load on one gateway from a few threads (loopback only)."""

    def __init__(
        self,
        gateway_url: str,
        customer_ids: list[str],
        concurrency: int = 4,
        pause_s: float = 0.01,
        client_timeout_s: float = 10.0,
        ks: tuple[int, ...] = (12, 11, 10, 9, 8),
    ) -> None:
        self.gateway_url = gateway_url
        self.concurrency = concurrency
        self.pause_s = pause_s
        self.client_timeout_s = client_timeout_s
        self._pairs: Iterator[tuple[str, int]] = itertools.cycle([(c, k) for k in ks for c in customer_ids])
        self._pairs_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.samples: list[Sample] = []
        self._samples_lock = threading.Lock()

    def _next_pair(self) -> tuple[str, int]:
        with self._pairs_lock:
            return next(self._pairs)

    def _worker(self) -> None:
        with httpx.Client(base_url=self.gateway_url, timeout=self.client_timeout_s) as client:
            while not self._stop.is_set():
                customer, k = self._next_pair()
                started = time.monotonic()
                try:
                    r = client.get("/recommend", params={"customer_id": customer, "k": k})
                    latency = time.monotonic() - started
                    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
                    sample = Sample(
                        started,
                        latency,
                        r.status_code,
                        body.get("source"),
                        body.get("cached"),
                        None if r.status_code < 400 else r.text[:200],
                    )
                except httpx.HTTPError as exc:
                    sample = Sample(started, time.monotonic() - started, 0, None, None, repr(exc)[:200])
                with self._samples_lock:
                    self.samples.append(sample)
                time.sleep(self.pause_s)

    def __enter__(self) -> SteadyLoad:
        for i in range(self.concurrency):
            t = threading.Thread(target=self._worker, name=f"load-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.client_timeout_s + 5)

    def window(self, start: float, end: float) -> list[Sample]:
        with self._samples_lock:
            return [s for s in self.samples if start <= s.started < end]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class FaultResult:
    fault: str
    expected_source: str
    budget_s: float
    requests: int = 0
    server_errors: int = 0  # 5xx
    other_failures: int = 0  # 4xx or no answer
    expected_share: float = 0.0  # of uncached answers in the fault window
    p50_s: float = 0.0
    p99_s: float = 0.0
    max_s: float = 0.0
    recovery_s: float | None = None  # from the dependency being back to the first normal answer
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.requests > 0
            and self.server_errors == 0
            and self.other_failures == 0
            and self.expected_share == 1.0
            and self.p99_s <= self.budget_s
            and self.recovery_s is not None
        )


def run_fault(
    load: SteadyLoad,
    fault: str,
    inject: Callable[[], None],
    restore: Callable[[], None],
    expected_source: str,
    budget_s: float,
    normal_source: str = "ranker",
    fault_window_s: float = 4.0,
    recovery_timeout_s: float = 30.0,
    check_during: Callable[[], str | None] | None = None,
) -> FaultResult:
    """Inject, observe ``fault_window_s`` of load, restore, wait for the normal path.

    ``check_during`` may return a note (e.g. what /readyz said) recorded in the result.
    """
    result = FaultResult(fault, expected_source, budget_s)
    inject()
    t_fault = time.monotonic()
    time.sleep(fault_window_s)
    if check_during is not None:
        note = check_during()
        if note:
            result.notes.append(note)
    t_restore_begin = time.monotonic()
    restore()  # returns once the dependency itself is back (ready)
    t_back = time.monotonic()
    window = load.window(t_fault, t_restore_begin)
    result.requests = len(window)
    result.server_errors = sum(1 for s in window if s.status >= 500)
    result.other_failures = sum(1 for s in window if s.status == 0 or 400 <= s.status < 500)
    computed = [s for s in window if s.status == 200 and not s.cached]
    if computed:
        result.expected_share = sum(1 for s in computed if s.source == expected_source) / len(computed)
    latencies = [s.latency_s for s in window]
    result.p50_s, result.p99_s = percentile(latencies, 50), percentile(latencies, 99)
    result.max_s = max(latencies, default=0.0)
    errors = {s.error for s in window if s.error}
    if errors:
        result.notes.append("errors: " + "; ".join(sorted(errors))[:300])

    deadline = t_back + recovery_timeout_s
    while time.monotonic() < deadline:
        normal = [
            s
            for s in load.window(t_back, time.monotonic())
            if s.status == 200 and not s.cached and s.source == normal_source
        ]
        if normal:
            result.recovery_s = max(0.0, min(s.started + s.latency_s for s in normal) - t_back)
            break
        time.sleep(0.1)
    return result


def format_table(results: list[FaultResult]) -> str:
    header = (
        f"{'fault':<26} {'expected':<10} {'reqs':>5} {'5xx':>4} {'fail':>4} {'fallback%':>9} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'budget':>7} {'recover s':>9}  ok"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        rec = f"{r.recovery_s:.2f}" if r.recovery_s is not None else "never"
        lines.append(
            f"{r.fault:<26} {r.expected_source:<10} {r.requests:>5} {r.server_errors:>4} {r.other_failures:>4} "
            f"{100 * r.expected_share:>8.1f}% {1000 * r.p50_s:>7.0f} {1000 * r.p99_s:>7.0f} "
            f"{1000 * r.max_s:>7.0f} {1000 * r.budget_s:>7.0f} {rec:>9}  {'yes' if r.ok else 'NO'}"
        )
        for note in r.notes:
            lines.append(f"    {note}")
    return "\n".join(lines)
