"""Baseline orderings of the same candidates, for the publish gate.

A ranker that loses to a baseline on the validation customers is not published; with no
incumbent to keep, the ranker service serves the best baseline's order instead, through
the same routes and the same candidate lists (``metadata.json`` says
``"ordering": "baseline:<name>"``, and so do ``/readyz`` and each ``/rank`` answer).

Each ordering is a fixed rule over the feature matrix, so it needs nothing the MMoE does
not already get:

- ``repurchase_popular``: the same over the last 4 weeks only (the classic baseline);
- ``recent_popular``: the customer's own earlier purchases, most recent first (then more
  often bought), then last week's global best sellers (stage one's ``popular`` source);
  the public "recent distinct articles, then best sellers" baseline, over the whole history;
- ``recent_trending``: the same, then the age band's growth-weighted trending articles.
"""

from __future__ import annotations

import numpy as np

from services.ranker.features import DAYS_CAP, FEATURE_NAMES

BASELINE_ORDERINGS: tuple[str, ...] = ("repurchase_popular", "recent_popular", "recent_trending")
# The classic baseline re-buys only the last 4 weeks' purchases (shared.baselines).
REPURCHASE_WINDOW_DAYS = 28.0
_F = {n: i for i, n in enumerate(FEATURE_NAMES)}


class BaselineOrder:
    """Scores like a model (``predict`` -> {"purchase": score}); higher is better."""

    def __init__(self, name: str) -> None:
        if name not in BASELINE_ORDERINGS:
            raise ValueError(f"unknown baseline ordering {name!r}; choose one of {', '.join(BASELINE_ORDERINGS)}")
        self.name = name
        self.fill = "src_trending" if name == "recent_trending" else "src_popular"
        self.window = REPURCHASE_WINDOW_DAYS if name == "repurchase_popular" else None

    @property
    def task_names(self) -> list[str]:
        return ["purchase"]

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        f = np.asarray(features, dtype=np.float64)
        bought = f[:, _F["pair_never_bought"]] < 0.5
        days = np.clip(f[:, _F["pair_days_since_bought"]], 0.0, DAYS_CAP)
        if self.window is not None:
            bought &= days <= self.window
        times = f[:, _F["pair_log_times_bought"]]
        # Bought before: 2 + recency in (0, 1] + a tie-break by times bought (< 1e-2);
        # otherwise the fill source's score, log1p of a value in [0, 1]: below 0.7 < 2.
        own = 2.0 + (1.0 - days / (DAYS_CAP + 1.0)) + 1e-3 * np.minimum(times, 9.0)
        return {"purchase": np.where(bought, own, f[:, _F[self.fill]])}

    def combined(self, task_scores: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
        return task_scores["purchase"].astype(np.float64)
