"""Positions within runs of equal values."""

from __future__ import annotations

import numpy as np

from shared.group_ranks import rank_within, run_starts


def test_rank_within_counts_from_zero_in_each_run() -> None:
    groups = np.array([3, 3, 3, 5, 7, 7])
    assert run_starts(groups).tolist() == [0, 3, 4]
    assert rank_within(groups).tolist() == [0, 1, 2, 0, 0, 1]


def test_a_value_seen_again_later_starts_a_new_run() -> None:
    assert rank_within(np.array([1, 1, 2, 1])).tolist() == [0, 1, 0, 0]


def test_empty_input_gives_empty_int_arrays() -> None:
    assert rank_within(np.zeros(0, dtype=np.int64)).dtype == np.int64
    assert len(rank_within(np.zeros(0))) == 0 and len(run_starts(np.zeros(0))) == 0
