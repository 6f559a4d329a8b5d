"""Stage one's per-source columns, as both stages read them (names from shared.contract.schemas).

A candidate frame (batch file, training lists, evaluation) carries one ``src_<source>``
float column per source: that source's own score, 0 when it did not propose the article. On
the wire the same values travel as a ``sources`` dict per candidate (only the non-zero ones).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from shared.contract.schemas import CANDIDATE_SOURCES

SOURCE_COLUMNS: tuple[str, ...] = tuple(f"src_{s}" for s in CANDIDATE_SOURCES)


def source_matrix(frame: pd.DataFrame) -> np.ndarray:
    """float32 [n, len(CANDIDATE_SOURCES)] of a candidate frame (zeros for absent columns)."""
    out = np.zeros((len(frame), len(SOURCE_COLUMNS)), dtype=np.float32)
    for j, name in enumerate(SOURCE_COLUMNS):
        if name in frame:
            out[:, j] = frame[name].to_numpy(dtype=np.float32)
    return out


_SOURCE_INDEX = {name: j for j, name in enumerate(CANDIDATE_SOURCES)}


def source_matrix_from_dicts(sources: Iterable[Mapping[Any, float]]) -> np.ndarray:
    """The same matrix from per-candidate ``{source: score}`` dicts (the wire format)."""
    rows = list(sources)
    out = np.zeros((len(rows), len(CANDIDATE_SOURCES)), dtype=np.float32)
    for i, row in enumerate(rows):
        for name, value in row.items():
            out[i, _SOURCE_INDEX[name]] = value
    return out


def source_matrix_from_columns(sources: Mapping[Any, Sequence[float]], n: int) -> np.ndarray:
    """The same matrix from one column per source (the columns wire; a source left out is 0)."""
    out = np.zeros((n, len(CANDIDATE_SOURCES)), dtype=np.float32)
    for name, values in sources.items():
        out[:, _SOURCE_INDEX[name]] = values
    return out
