"""Concurrent queries share batched passes and each gets its own row; failures reach every waiter."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from services.search.query_batch import QueryBatcher


def _slow_encoder(calls: list[list[str]]):
    def encode(queries: list[str]) -> np.ndarray:
        calls.append(list(queries))
        time.sleep(0.05)  # a forward pass: long enough for the other threads to queue up
        return np.array([[len(q), ord(q[0])] for q in queries], dtype=np.float32)

    return encode


def test_alone_a_query_is_a_batch_of_one() -> None:
    calls: list[list[str]] = []
    batcher = QueryBatcher(_slow_encoder(calls))
    assert batcher.encode("dress").tolist() == [5.0, ord("d")]
    assert calls == [["dress"]]


def test_concurrent_queries_share_passes_and_get_their_own_rows() -> None:
    calls: list[list[str]] = []
    batcher = QueryBatcher(_slow_encoder(calls), max_batch=8)
    queries = [f"q{'x' * i}" for i in range(20)]
    results: dict[str, list[float]] = {}

    def ask(q: str) -> None:
        results[q] = batcher.encode(q).tolist()

    threads = [threading.Thread(target=ask, args=(q,)) for q in queries]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == {q: [float(len(q)), float(ord("q"))] for q in queries}
    assert sorted(q for batch in calls for q in batch) == sorted(queries)  # each query encoded once
    assert len(calls) < len(queries)  # some shared a pass
    assert max(len(b) for b in calls) <= 8  # never more than max_batch at once


def test_a_failed_pass_raises_in_every_waiting_thread_and_the_next_one_runs() -> None:
    fail = {"on": True}

    def encode(queries: list[str]) -> np.ndarray:
        time.sleep(0.05)
        if fail["on"]:
            raise RuntimeError("encoder broke")
        return np.zeros((len(queries), 2), dtype=np.float32)

    batcher = QueryBatcher(encode)
    errors: list[str] = []

    def ask() -> None:
        try:
            batcher.encode("a")
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=ask) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert errors == ["encoder broke"] * 5
    fail["on"] = False
    assert batcher.encode("b").shape == (2,)
    with pytest.raises(RuntimeError):
        fail["on"] = True
        batcher.encode("c")
