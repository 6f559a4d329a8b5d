"""shared.parallel.in_order: a batch's chunks on a pool, results in the chunks' order."""

from __future__ import annotations

import threading
import time

import pytest

from shared.parallel import in_order


def test_results_come_in_input_order_whatever_finishes_first() -> None:
    def slow_then_fast(i: int) -> tuple[int, str]:
        time.sleep(0.02 * (5 - i % 5))  # early items finish last
        return i, threading.current_thread().name

    out = list(in_order(slow_then_fast, range(12), workers=3))
    assert [i for i, _ in out] == list(range(12))
    assert len({name for _, name in out}) > 1  # shared out over threads


@pytest.mark.parametrize("items", [[], [7], [7, 8, 9]])
def test_one_worker_or_one_chunk_runs_in_the_callers_thread(items: list[int]) -> None:
    here = threading.current_thread().name
    for workers in (1, 4):
        if workers == 4 and len(items) > 1:
            continue
        out = list(in_order(lambda i: (i, threading.current_thread().name), items, workers=workers))
        assert out == [(i, here) for i in items]


def test_a_failing_chunk_raises_in_order_and_stops_the_rest() -> None:
    started: list[int] = []

    def work(i: int) -> int:
        started.append(i)
        if i == 2:
            raise ValueError("chunk 2")
        time.sleep(0.01)
        return i

    got: list[int] = []
    with pytest.raises(ValueError, match="chunk 2"):
        for value in in_order(work, range(100), workers=2):
            got.append(value)
    assert got == [0, 1] and len(started) < 100
