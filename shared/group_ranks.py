"""Positions within runs of equal values: the array step under every ranked list.

Stage one (each source's top rows per customer), the re-rank (each customer's order), the
ranker's rank features and its validation MAP sort rows by group, then need where each group
starts or each row's place in it. Served on every request, so plain NumPy with no per-call
Python parsing.
"""

from __future__ import annotations

import numpy as np


def run_starts(sorted_groups: np.ndarray) -> np.ndarray:
    """Indices where a run of equal values of ``sorted_groups`` begins."""
    if not len(sorted_groups):
        return np.zeros(0, dtype=np.int64)
    # np.concatenate, not np.r_: r_ parses its arguments in Python, ~60 us a call per request
    return np.flatnonzero(np.concatenate(([True], sorted_groups[1:] != sorted_groups[:-1])))


def rank_within(sorted_groups: np.ndarray) -> np.ndarray:
    """0, 1, 2 ... within each run of equal values of ``sorted_groups``."""
    if not len(sorted_groups):
        return np.zeros(0, dtype=np.int64)
    starts = run_starts(sorted_groups)
    return np.arange(len(sorted_groups)) - np.repeat(starts, np.diff(np.append(starts, len(sorted_groups))))
