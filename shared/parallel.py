"""Chunks of a batch job on a thread per core, results in input order.

The batch steps (``hmrec infer``, ``hmrec rerank``) spend their time in NumPy and arrow, which
release the GIL in the heavy loops; a thread per core shares the models' arrays instead of
copying them into processes. BLAS is held to one thread each while they run: their products
are too small to split, and BLAS threads waiting on a core another chunk holds made the
MMoE's forward pass 3-6x slower (benchmarks/bench_rerank.py).
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from threadpoolctl import threadpool_limits

In = TypeVar("In")
Out = TypeVar("Out")

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def in_order(work: Callable[[In], Out], items: Iterable[In], workers: int | None = None) -> Iterator[Out]:
    """``work(item)`` for each item, ``workers`` at a time (default: one per core), yielded in
    the items' order; at most ``workers + 1`` results wait, so memory stays a few chunks'."""
    workers = max(1, workers or CORES)
    rest = iter(items)
    head = list(itertools.islice(rest, 2))
    if workers == 1 or len(head) < 2:  # one chunk: nothing to share out, BLAS keeps its threads
        yield from map(work, itertools.chain(head, rest))
        return
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers, thread_name_prefix="batch") as pool:
        pending: deque[Future[Out]] = deque()
        try:
            for item in itertools.chain(head, rest):
                pending.append(pool.submit(work, item))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for waiting in pending:  # a failure (or a consumer that stopped): no more chunks
                waiting.cancel()
