"""Every age-band scheme of the product, in one place, each named for what it serves.

Three schemes, because they serve three different needs (merging them would change what
was measured):

- ``BASELINE_BANDS``: the age-popularity and age-trending baselines and stage one's trending
  source. Fine where H&M's customers are dense (the two peaks: early 20s and around 50), so
  each band still has enough purchases a week to rank by; an unknown age falls back to
  global popularity.
- ``DECADE_BANDS``: what a person reads (the page, the gateway's popular-per-band fallback)
  and the ranker's age-band affinity features: six ten-year bands from 16, plus "unknown".
- ``TOWER_AGE_EDGES``: the two-tower's age input, five-year buckets embedded by the query
  tower (index 0 = unknown); changing them changes the model's input vocabulary.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# (label, lowest age, highest age), inclusive; a fractional age belongs to its whole year.
BASELINE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<=19", 0, 19),
    ("20-24", 20, 24),
    ("25-29", 25, 29),
    ("30-39", 30, 39),
    ("40-49", 40, 49),
    ("50-59", 50, 59),
    ("60+", 60, 200),
)

# A band starts at each edge; H&M customers are 16+, so the first band reads "16-24".
DECADE_EDGES: tuple[float, ...] = (25.0, 35.0, 45.0, 55.0, 65.0)
DECADE_LABELS: tuple[str, ...] = ("16-24", "25-34", "35-44", "45-54", "55-64", "65+")
N_DECADE_BANDS = len(DECADE_LABELS)
UNKNOWN_BAND = "unknown"

# Two-tower age buckets: 0 = unknown, then <20, 20-24, ..., 60-64, 65+.
TOWER_AGE_EDGES: tuple[int, ...] = (20, 25, 30, 35, 40, 45, 50, 55, 60, 65)
N_TOWER_AGE_BUCKETS = len(TOWER_AGE_EDGES) + 2


def baseline_band(ages: pd.Series) -> pd.Series:
    """The BASELINE_BANDS label of each age; missing or out-of-range ages give ``<NA>``."""
    labels = pd.Series(pd.NA, index=ages.index, dtype="object")
    a = pd.to_numeric(ages, errors="coerce")
    for label, low, high in BASELINE_BANDS:
        labels[(a >= low) & (a < high + 1)] = label
    return labels


def baseline_band_index(ages: np.ndarray) -> np.ndarray:
    """Index into BASELINE_BANDS per age, -1 when unknown (stage one's array form)."""
    a = np.asarray(ages, dtype=np.float64)
    out = np.full(len(a), -1, dtype=np.int8)
    for i, (_, low, high) in enumerate(BASELINE_BANDS):
        out[(a >= low) & (a < high + 1)] = i
    return out


def decade_band(ages: np.ndarray) -> np.ndarray:
    """DECADE_BANDS index 0..5 per age; -1 where the age is unknown (NaN)."""
    a = np.asarray(ages, dtype=np.float64)
    band = np.searchsorted(np.asarray(DECADE_EDGES), a, side="right").astype(np.int8)
    band[np.isnan(a)] = -1
    return band


def decade_label(age: float | None) -> str:
    """The DECADE_BANDS label a person reads, or ``unknown``."""
    if age is None or (isinstance(age, float) and math.isnan(age)):
        return UNKNOWN_BAND
    return DECADE_LABELS[int(np.searchsorted(np.asarray(DECADE_EDGES), age, side="right"))]


def tower_age_bucket(ages: pd.Series | np.ndarray) -> np.ndarray:
    """The two-tower's age input: 0 for unknown, else 1 + the bucket (<20 -> 1, ..., 65+ -> 11)."""
    a = np.asarray(ages, dtype=np.float64)
    out = np.digitize(np.nan_to_num(a, nan=0.0), TOWER_AGE_EDGES) + 1
    return np.where(np.isnan(a), 0, out).astype(np.int32)
