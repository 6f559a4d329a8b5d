"""shared.age_bands: each scheme's boundaries, and unknown ages."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from shared.age_bands import (
    BASELINE_BANDS,
    N_TOWER_AGE_BUCKETS,
    baseline_band,
    baseline_band_index,
    decade_band,
    decade_label,
    tower_age_bucket,
)


def test_baseline_bands_boundaries():
    ages = pd.Series([15, 19, 19.5, 20, 24, 25, 39, 40, 59, 60, 95, np.nan], dtype="float32")
    assert baseline_band(ages).tolist() == [
        "<=19",
        "<=19",
        "<=19",
        "20-24",
        "20-24",
        "25-29",
        "30-39",
        "40-49",
        "50-59",
        "60+",
        "60+",
        pd.NA,
    ]
    index = baseline_band_index(ages.to_numpy())
    labels = [BASELINE_BANDS[i][0] if i >= 0 else pd.NA for i in index]
    assert labels == baseline_band(ages).tolist()


def test_decade_bands_index_and_label_agree():
    ages = np.array([16, 24, 24.9, 25, 34, 35, 44.5, 50, 64, 65, 90, np.nan])
    assert decade_band(ages).tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 4, 5, 5, -1]
    assert [decade_label(a) for a in ages] == [
        "16-24",
        "16-24",
        "16-24",
        "25-34",
        "25-34",
        "35-44",
        "35-44",
        "45-54",
        "55-64",
        "65+",
        "65+",
        "unknown",
    ]
    assert decade_label(None) == "unknown" and decade_label(math.nan) == "unknown"


def test_tower_age_buckets():
    buckets = tower_age_bucket(np.array([np.nan, 16, 20, 24, 25, 64, 65, 99]))
    assert buckets.tolist() == [0, 1, 2, 2, 3, 10, 11, 11]
    assert buckets.max() < N_TOWER_AGE_BUCKETS
