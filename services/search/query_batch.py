"""Concurrent single queries answered by one batched call, without a background thread.

A request thread that finds the encoder busy leaves its query in a queue and waits; when the
encoder frees up, the first waiting thread takes every queued query and encodes them in one
forward pass, then wakes the others with their rows. Under load a batch of 16 short queries
costs a few single passes; alone, a query is a batch of one (no added wait, the same result).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class _Slot:
    query: str
    result: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False


class QueryBatcher:
    """``encode(query)`` through ``encode_batch(list of queries) -> [n, d]``, batching the
    queries of threads that arrive while a batch is running (at most ``max_batch`` per pass)."""

    def __init__(self, encode_batch: Callable[[list[str]], np.ndarray], max_batch: int = 32) -> None:
        self._encode_batch = encode_batch
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Slot] = []
        self._busy = False
        self.batches = 0  # passes run (tests and benchmarks read it)

    def encode(self, query: str) -> np.ndarray:
        slot = _Slot(query)
        with self._cond:
            self._queue.append(slot)
        while True:
            with self._cond:
                while self._busy and not slot.done:
                    self._cond.wait()
                if slot.done:
                    return self._result(slot)
                # The encoder is free: run the queue's head (it holds this query unless more
                # than max_batch were waiting ahead of it; then run theirs and come round again).
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                self._busy = True
            self._run(batch)

    def _run(self, batch: list[_Slot]) -> None:
        try:
            vectors = self._encode_batch([s.query for s in batch])
            for s, v in zip(batch, vectors, strict=True):
                s.result = v
        except BaseException as exc:  # every waiter of this batch gets the failure, not a hang
            for s in batch:
                s.error = exc
        finally:
            with self._cond:
                for s in batch:
                    s.done = True
                self._busy = False
                self.batches += 1
                self._cond.notify_all()

    @staticmethod
    def _result(slot: _Slot) -> np.ndarray:
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None
        return slot.result
