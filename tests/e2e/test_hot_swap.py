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


def _hot_swap_module():  # the benchmark script, loaded by path (benchmarks/ is no package)
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
        stack.gateway,
        {"candidate": stack.url("candidate"), "ranker": stack.url("ranker")},
        stack.output_dir / "models",
        concurrency=4,
        warm_s=1.5,
        after_s=3.0,
        swap_timeout_s=40.0,
        customers=customers[:8],
    )
    table = hot_swap.format_table(result)
    print(table)
    (ARTIFACTS / "e2e").mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "e2e" / "hot_swap_table.txt").write_text(table + "\n")

    assert result.new["candidate"] != result.old["candidate"] and result.new["ranker"] != result.old["ranker"]
    before = [s for s in result.samples if result.phase(s) == "before publish"]
    assert before and all(
        s.candidate == result.old["candidate"] and s.ranker == result.old["ranker"] for s in before if s.status == 200
    ), table
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


def test_retraining_the_ranker_while_it_serves_swaps_in_a_new_version_and_misses_old_cache(live_stack, customers):
    """A real `hmrec train ranker` run against the live stack: the new (unique) version is
    served without a restart, and the first feed after it is computed anew, not the cached one."""
    from shared.artifacts import publish, resolve_version

    from .helpers import recommend, wait_until
    from .stack import base_env, run_cli

    stack = live_stack
    models = stack.output_dir / "models"
    old = resolve_version(models, "mmoe")
    first = recommend(stack.gateway, customers[0]).json()
    again = recommend(stack.gateway, customers[0]).json()
    assert first["model_versions"]["ranker"] == old and again["cached"] is True
    env = base_env()
    env.update(HM_DATA_DIR=str(stack.data_dir), HM_OUTPUT_DIR=str(stack.output_dir))
    try:
        # --force: this test is about the swap, not the gate's verdict (tests/ranker covers that)
        run_cli(
            [
                "train",
                "ranker",
                "--data-dir",
                str(stack.data_dir),
                "--output-dir",
                str(stack.output_dir),
                "--epochs",
                "1",
                "--two-tower-epochs",
                "1",
                "--train-weeks",
                "1",
                "--no-single-task",
                "--force",
            ],
            env,
            stack.log_dir,
        )
        new = resolve_version(models, "mmoe")
        assert new != old
        body = wait_until(
            lambda: (b := recommend(stack.gateway, customers[0]).json())["model_versions"]["ranker"] == new and b,
            timeout_s=60,
            what=f"gateway serving ranker {new}",
        )
        assert body["cached"] is False and body["source"] == "ranker"
    finally:
        publish(models, "mmoe", old)
        wait_until(
            lambda: recommend(stack.gateway, customers[1]).json()["model_versions"]["ranker"] == old,
            timeout_s=60,
            what="old ranker back",
        )
