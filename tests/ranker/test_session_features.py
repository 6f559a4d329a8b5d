"""The session in the ranker: session articles of a row's customer get the pair features of a
purchase made today; every other row is untouched."""

from __future__ import annotations

import numpy as np

from services.ranker.features import FEATURE_NAMES, N_FEATURES
from services.ranker.session_features import apply_session

F = {n: i for i, n in enumerate(FEATURE_NAMES)}


def test_session_articles_look_bought_today_and_nothing_else_moves():
    rng = np.random.default_rng(0)
    features = rng.uniform(1, 5, (4, N_FEATURES)).astype(np.float32)
    features[:, F["pair_never_bought"]] = 1.0
    features[:, F["pair_log_times_bought"]] = 0.0
    before = features.copy()
    customers = np.array(["c1", "c1", "c2", "c2"], dtype=object)
    articles = np.array(["A", "B", "A", "B"], dtype=object)
    out = apply_session(features, customers, articles, {"c1": ["B", "A"], "c2": []})
    # c1's B is the session's first (rank 0), A its second (rank 1); c2 has no session
    assert out[0, F["pair_recency_rank"]] == 1 and out[1, F["pair_recency_rank"]] == 0
    for row in (0, 1):
        assert out[row, F["pair_never_bought"]] == 0 and out[row, F["pair_days_since_bought"]] == 0
        assert out[row, F["pair_log_times_bought"]] == np.float32(np.log1p(1.0))
    np.testing.assert_array_equal(out[2:], before[2:])
    changed = {
        F[n] for n in ("pair_never_bought", "pair_days_since_bought", "pair_recency_rank", "pair_log_times_bought")
    }
    others = [j for j in range(N_FEATURES) if j not in changed]
    np.testing.assert_array_equal(out[:, others], before[:, others])
    assert apply_session(before.copy(), customers, articles, None).tolist() == before.tolist()
