"""Training and serving compute the same features for the same rows; evaluation refuses leaks."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.ranker.dataset import build_training_data
from services.ranker.features import build_feature_store, compute_features
from services.ranker.serving import LoadedRanker
from shared.artifacts import atomic_model_dir, publish
from tests.ranker.conftest import A1, A2, A3, A4, C1, C3, CUTOFF, export_random_ranker, hand_shop


def test_training_rows_and_served_rows_get_identical_features_and_scores(tmp_path: Path) -> None:
    articles, customers, tx = hand_shop()
    train_store = build_feature_store(tx, customers, articles, CUTOFF)
    cands = pd.DataFrame(
        {
            "customer_id": [C1, C1, C1, C1, C3, C3],
            "article_id": [A4, A1, A2, A3, A2, A4],
            "score": [0.2, 0.9, 0.4, 0.6, 0.8, 0.1],
        }
    )
    data = build_training_data(cands, tx, train_store, CUTOFF)
    # Serving: the store travels inside the artifact (saved, loaded) and is queried one customer
    # at a time, the candidates in another order than at training time.
    folder = export_random_ranker(tmp_path / "models", build_feature_store(tx, customers, articles, CUTOFF), "v1")
    served = LoadedRanker.load(folder)
    for customer in (C1, C3):
        rows = np.flatnonzero(data.customer_ids == customer)[::-1]
        online = compute_features(served.store, [customer] * len(rows), data.article_ids[rows], data.scores[rows])
        assert np.array_equal(online, data.features[rows])
        # And the /rank path scores them exactly as the model scores the training rows.
        ranked = served.rank(customer, list(data.article_ids[rows]), list(data.scores[rows]), k=10)
        offline = served.model.combined(served.model.predict(data.features[rows]), served.score_weights)
        by_article = dict(zip(data.article_ids[rows], offline, strict=True))
        assert ranked.scores.tolist() == pytest.approx([by_article[a] for a in ranked.article_ids], rel=1e-6)


def _fake_two_tower(models_dir: Path, version: str, cutoff: date | None) -> None:
    with atomic_model_dir(models_dir, "two_tower", version, {"cutoff": cutoff.isoformat() if cutoff else None}):
        pass
    publish(models_dir, "two_tower", version)


def test_evaluation_methods_refuse_leaky_models(tmp_path: Path) -> None:
    from pipeline.evaluation import LeakageError, make_context
    from pipeline.methods.ranker import build_methods
    from shared.config import get_paths
    from shared.data import Dataset

    articles, customers, tx = hand_shop()
    paths = get_paths(tmp_path / "data", tmp_path / "out")
    early = date(2020, 9, 9)
    ctx = make_context(Dataset(articles, customers, tx), paths, cutoff=early)  # C1 bought A1 on 09-10
    assert build_methods(ctx) == {}  # no artifacts yet
    _fake_two_tower(paths.models_dir, "v1", early)
    # The ranker's feature store reaches up to 09-16: it has seen the week starting 09-09.
    export_random_ranker(paths.models_dir, build_feature_store(tx, customers, articles, CUTOFF), "v1")
    with pytest.raises(LeakageError, match="ranker"):
        build_methods(ctx)
    late = make_context(Dataset(articles, customers, tx), paths, cutoff=CUTOFF)
    _fake_two_tower(paths.models_dir, "v2", None)  # trained on everything
    with pytest.raises(LeakageError, match="two-tower"):
        build_methods(late)
    _fake_two_tower(paths.models_dir, "v3", CUTOFF)
    assert set(build_methods(late)) == {"pipeline"}
