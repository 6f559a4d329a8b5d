"""The session in the ranker: candidates the shopper clicked, carted or bought in this session
look, to the ranker, like articles they bought today.

The feature store knows purchases up to its cutoff only. A request's ``recent_article_ids``
(the gateway's weighted session, strongest first; the same list stage one seeded from) set the
pair features of those candidates as stage one treats them: bought (``pair_never_bought`` 0),
0 days ago, at least once, with a recency rank equal to their place in the session. The MMoE
and the baseline orderings (which read the same columns) then rank them as recent purchases.
Rows of other articles are unchanged, so a request without a session is scored as before.

Not learned: the ranker was not trained with sessions (its training weeks have none); a
feature schema with real session features (viewed/carted here, minutes since, similarity to
the session's items) is the next step (docs/events.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from services.ranker.features import FEATURE_NAMES, RECENCY_CAP

_F = {n: i for i, n in enumerate(FEATURE_NAMES)}


def apply_session(
    features: np.ndarray, customer_ids: np.ndarray, article_ids: np.ndarray, recent: Mapping[str, Sequence[str]] | None
) -> np.ndarray:
    """``features`` (``[n, N_FEATURES]``, changed in place and returned) with the session's
    articles of each row's customer marked as bought today. ``recent``: customer -> articles."""
    if not recent:
        return features
    position = {(c, a): i for c, arts in recent.items() for i, a in enumerate(arts)}
    if not position:
        return features
    rank = np.array([position.get((c, a), -1) for c, a in zip(customer_ids, article_ids, strict=True)])
    rows = rank >= 0
    if rows.any():
        times = features[rows, _F["pair_log_times_bought"]]
        features[rows, _F["pair_log_times_bought"]] = np.maximum(times, np.log1p(1.0))
        features[rows, _F["pair_never_bought"]] = 0.0
        features[rows, _F["pair_days_since_bought"]] = 0.0
        features[rows, _F["pair_recency_rank"]] = np.minimum(rank[rows], RECENCY_CAP)
    return features
