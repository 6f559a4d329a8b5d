"""Hot model swap under load on the e2e stack (short pass of ``benchmarks/hot_swap.py``).

While four client threads ask the gateway for recommendations (a few customers, so most
answers are cached), a new two_tower and mmoe version are published (copies of the served
ones under new names). Both services must switch with zero failed requests, and once the
gateway reports the new versions every answer, cached ones included, must carry them (cache
keys carry versions). The old versions are put back afterwards for the other e2e tests.
"""
from __future__ import annotations

import importlib.util
import sys

import pytest

from .conftest import ARTIFACTS
from .stack import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _hot_swap_module():  # noqa: ANN202 - the benchmark script, loaded by path (benchmarks/ is no package)
    path = REPO_ROOT / "benchmarks" / "hot_swap.py"
    spec = importlib.util.spec_from_file_location("hmrec_bench_hot_swap", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


def test_publishing_new_models_under_load_fails_nothing_and_serves_nothing_stale(live_stack, customers):
    hot_swap = _hot_swap_module()
    stack = live_stack
    result = hot_swap.run_hot_swap(
        stack.gateway, {"candidate": stack.url("candidate"), "ranker": stack.url("ranker")},
        stack.output_dir / "models", concurrency=4, warm_s=1.5, after_s=3.0, swap_timeout_s=40.0,
        customers=customers[:8],
    )
    table = hot_swap.format_table(result)
    print(table)
    (ARTIFACTS / "e2e").mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "e2e" / "hot_swap_table.txt").write_text(table + "\n")

    assert result.new["candidate"] != result.old["candidate"] and result.new["ranker"] != result.old["ranker"]
    before = [s for s in result.samples if result.phase(s) == "before publish"]
    assert before and all(s.candidate == result.old["candidate"] and s.ranker == result.old["ranker"]
                          for s in before if s.status == 200), table
    assert not result.failed, table
    assert all(t is not None for t in result.service_swapped_at.values()), table
    assert result.gateway_switched_at is not None, table
    after = [s for s in result.samples if result.phase(s) == "after switch"]
    assert after, table
    assert all(result.is_new(s) for s in after), table  # no stale answer, cached or not
    assert all(s.source == "ranker" for s in after), table  # the full pipeline, not a fallback
    # 8 customers x 2 k-values were cached before the swap; after it they are cached again,
    # under the new versions' keys.
    assert any(s.cached for s in after), table
    assert result.restored, table
