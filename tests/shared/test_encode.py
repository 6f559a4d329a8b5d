"""The id encodings of shared/encode.py: every kind of id column a caller hands in."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.encode import IdLookup, as_arrow_strings, positions, vocabulary


def test_ids_of_every_kind_become_the_same_arrow_strings() -> None:
    want = ["0000000001", "0000000002"]
    for ids in (
        np.array(want, dtype=object),  # Python strings: straight into arrow
        np.array(want),  # a NumPy unicode array
        pd.Series(want, dtype="string[pyarrow]"),  # the loaders' column, not copied
        pd.Index(want),
        list(want),
    ):
        assert as_arrow_strings(ids).to_pylist() == want
    # what is not a string becomes its str(), a missing one included, as it always did
    assert as_arrow_strings([1, 2]).to_pylist() == ["1", "2"]
    assert as_arrow_strings(np.array(["x", None], dtype=object)).to_pylist() == ["x", "None"]


def test_positions_and_the_lookup_agree_for_one_request_and_for_a_batch() -> None:
    ids = np.array([f"{i:064x}" for i in range(5_000)], dtype=object)
    lookup = IdLookup(ids)
    query = np.array([ids[7], "nope", ids[4_999], ids[0]], dtype=object)
    assert lookup(query).tolist() == [7, -1, 4_999, 0]  # the dict path
    many = np.concatenate([query] * 1_000)  # the arrow path
    assert lookup(many).tolist() == [7, -1, 4_999, 0] * 1_000
    assert positions(query, vocabulary(ids)).tolist() == [7, -1, 4_999, 0]
