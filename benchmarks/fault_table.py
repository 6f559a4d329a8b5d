"""Fault injection under steady load, longer windows than the test: prints the table.

Starts the whole product as local processes (tiny synthetic world by default, models made
by the real ``hmrec`` CLI; or an existing prepared folder), a private Redis, then for each
fault (ranker killed / hung, candidate killed / hung, Redis stopped) reports requests, 5xx,
failures, the share served by the declared fallback, p50/p99 against the budget and the
time to recover once the dependency is back.

    .venv/bin/python benchmarks/fault_table.py --window 10 --concurrency 8
    .venv/bin/python benchmarks/fault_table.py --work-dir /tmp/e2e_work   # reuse world + models

Loopback only; every child process is ended at exit.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import pandas as pd
from e2e.faults import SteadyLoad, format_table, percentile, run_fault
from e2e.stack import RECOMMEND_BUDGET_S, PrivateRedis, prepare_world
from e2e.stack import Stack as _Stack

FAST_FAIL_BUDGET_S = 0.75


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", type=Path, default=None, help="world + models folder (made if missing)")
    ap.add_argument("--window", type=float, default=8.0, help="seconds of load under each fault")
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()

    root = args.work_dir or Path(tempfile.mkdtemp(prefix="hm_faults_"))
    log_dir = root / "logs"
    if not (root / ".prepared").exists():
        prepare_world(root, log_dir)
        (root / ".prepared").write_text("ok")
    data_dir, output_dir = root / "data", root / "output"

    redis = PrivateRedis(log_dir)
    redis.start()
    stack = _Stack(data_dir=data_dir, output_dir=output_dir, log_dir=log_dir, redis_url=redis.url)
    try:
        started = time.monotonic()
        stack.start_all()
        print(f"stack ready in {time.monotonic() - started:.1f}s; logs in {log_dir}", flush=True)
        customers = pd.read_csv(data_dir / "customers.csv", usecols=["customer_id"], dtype=str)["customer_id"].tolist()
        results = []
        with SteadyLoad(stack.gateway, customers, concurrency=args.concurrency) as load:
            time.sleep(args.window)
            baseline = load.window(0, time.monotonic())
            faults = [
                (
                    "ranker killed (SIGKILL)",
                    lambda: stack.kill("ranker"),
                    lambda: stack.start("ranker"),
                    "candidates",
                    FAST_FAIL_BUDGET_S,
                ),
                (
                    "ranker hung (SIGSTOP)",
                    stack.procs["ranker"].pause,
                    stack.procs["ranker"].resume,
                    "candidates",
                    RECOMMEND_BUDGET_S,
                ),
                (
                    "candidate killed (SIGKILL)",
                    lambda: stack.kill("candidate"),
                    lambda: stack.start("candidate"),
                    "popular",
                    FAST_FAIL_BUDGET_S,
                ),
                (
                    "candidate hung (SIGSTOP)",
                    stack.procs["candidate"].pause,
                    stack.procs["candidate"].resume,
                    "popular",
                    RECOMMEND_BUDGET_S,
                ),
                ("redis stopped", redis.stop, redis.start, "ranker", FAST_FAIL_BUDGET_S),
            ]
            for name, inject, restore, expected, budget in faults:
                print(f"injecting: {name}", flush=True)
                results.append(run_fault(load, name, inject, restore, expected, budget, fault_window_s=args.window))
        print()
        print(
            f"baseline: {len(baseline)} requests in {args.window:.0f}s at concurrency {args.concurrency}, "
            f"p50 {1000 * percentile([s.latency_s for s in baseline], 50):.0f} ms, "
            f"p99 {1000 * percentile([s.latency_s for s in baseline], 99):.0f} ms"
        )
        print(format_table(results))
    finally:
        stack.shutdown()
        redis.stop()


if __name__ == "__main__":
    main()
