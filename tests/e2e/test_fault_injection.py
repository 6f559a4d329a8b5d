"""Short fault-injection pass under a steady load (real processes, real Redis).

For each fault: no 5xx from /recommend, the declared fallback serves every computed answer
in the fault window, p99 within the timeout budget, and the normal path returns by itself
once the dependency is back. The table is printed (``pytest -s`` shows it) and written to
``test-artifacts/e2e/fault_table.txt``. ``benchmarks/fault_table.py`` runs longer windows.
"""

from __future__ import annotations

import time

import httpx
import pandas as pd
import pytest

from .conftest import ARTIFACTS
from .faults import FaultResult, SteadyLoad, format_table, percentile, run_fault
from .stack import RECOMMEND_BUDGET_S

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAULT_WINDOW_S = 3.0
# A refused connection is answered at once; only a hung dependency may use its timeout.
FAST_FAIL_BUDGET_S = 0.75


def _all_customers(stack) -> list[str]:
    ids = pd.read_csv(stack.data_dir / "customers.csv", usecols=["customer_id"], dtype=str)["customer_id"]
    return ids.tolist()


def _cache_backend(url: str) -> str:
    body = httpx.get(url + "/readyz", timeout=5).json()
    return f"readyz cache backend during fault: {body['cache']['backend']}"


def test_faults_under_steady_load(live_stack, gateway_private_redis, private_redis):
    stack = live_stack
    customers = _all_customers(stack)
    results: list[FaultResult] = []

    # Everything below goes through the gateway on the private Redis, so stopping Redis
    # never touches the machine's shared one.
    gw = gateway_private_redis.url
    with SteadyLoad(gw, customers, concurrency=4) as load:
        time.sleep(1.5)
        baseline = load.window(0, time.monotonic())
        assert baseline and all(s.status == 200 for s in baseline), baseline[:3]
        base_p99 = percentile([s.latency_s for s in baseline], 99)

        results.append(
            run_fault(
                load,
                "ranker killed (SIGKILL)",
                inject=lambda: stack.kill("ranker"),
                restore=lambda: stack.start("ranker"),
                expected_source="candidates",
                budget_s=FAST_FAIL_BUDGET_S,
                fault_window_s=FAULT_WINDOW_S,
            )
        )
        results.append(
            run_fault(
                load,
                "ranker hung (SIGSTOP)",
                inject=lambda: stack.procs["ranker"].pause(),
                restore=lambda: stack.procs["ranker"].resume(),
                expected_source="candidates",
                budget_s=RECOMMEND_BUDGET_S,
                fault_window_s=FAULT_WINDOW_S,
            )
        )
        results.append(
            run_fault(
                load,
                "candidate killed (SIGKILL)",
                inject=lambda: stack.kill("candidate"),
                restore=lambda: stack.start("candidate"),
                expected_source="popular",
                budget_s=FAST_FAIL_BUDGET_S,
                fault_window_s=FAULT_WINDOW_S,
            )
        )
        results.append(
            run_fault(
                load,
                "candidate hung (SIGSTOP)",
                inject=lambda: stack.procs["candidate"].pause(),
                restore=lambda: stack.procs["candidate"].resume(),
                expected_source="popular",
                budget_s=RECOMMEND_BUDGET_S,
                fault_window_s=FAULT_WINDOW_S,
            )
        )
        results.append(
            run_fault(
                load,
                "redis stopped",
                inject=private_redis.stop,
                restore=private_redis.start,
                expected_source="ranker",
                budget_s=FAST_FAIL_BUDGET_S,
                fault_window_s=FAULT_WINDOW_S,
                check_during=lambda: _cache_backend(gw),
            )
        )

    table = format_table(results)
    table = f"baseline p99 {1000 * base_p99:.0f} ms over {len(baseline)} requests\n" + table
    print("\n" + table)
    out = ARTIFACTS / "e2e" / "fault_table.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")

    for r in results:
        assert r.requests > 0, f"{r.fault}: no load observed"
        assert r.server_errors == 0, f"{r.fault}: 5xx under fault\n{table}"
        assert r.other_failures == 0, f"{r.fault}: failed requests under fault\n{table}"
        assert r.expected_share == 1.0, f"{r.fault}: fallback {r.expected_source} not always served\n{table}"
        assert r.p99_s <= r.budget_s, f"{r.fault}: p99 over budget\n{table}"
        assert r.recovery_s is not None, f"{r.fault}: never recovered\n{table}"
    redis_result = results[-1]
    assert any("local" in n for n in redis_result.notes), f"readyz did not report the local cache\n{table}"
