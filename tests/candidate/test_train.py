"""Training on `tiny`, the exported artifact, save -> load -> same scores, determinism."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from services.candidate.artifact import load_two_tower
from services.candidate.infer import CutoffError, generate_candidates
from services.candidate.settings import NO_FILTERS
from services.candidate.train import same_week_order, train_two_tower
from tests.candidate.conftest import FAST_CONFIG

pytestmark = pytest.mark.slow


def test_artifact_has_everything_a_service_needs(trained, tiny_cutoff):
    folder = trained / "two_tower" / "v1"
    assert (trained / "two_tower" / "CURRENT").read_text().strip() == "v1"
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["cutoff"] == tiny_cutoff.isoformat()
    assert meta["libraries"]["tensorflow-recommenders"] == "0.7.7"
    assert len(meta["data_fingerprint"]) == 16
    assert "history" in meta["feature_schema"]["query"]
    assert 0.0 <= meta["metrics"]["val_recall@100"] <= 1.0
    history = json.loads((folder / "history.json").read_text())
    assert len(history["loss"]) == meta["metrics"]["epochs_run"] >= 1
    for name in ("training_curves.png", "article_embeddings.npy", "customer_features.parquet", "popular.json"):
        assert (folder / name).stat().st_size > 0
    # nothing half-written is left beside the version
    assert not [p for p in (trained / "two_tower").iterdir() if p.name.startswith(".")]


def test_save_load_gives_the_same_scores(trained, tiny_dataset, tiny_cutoff):
    folder = trained / "two_tower" / "v1"
    a, b = load_two_tower(folder), load_two_tower(folder)
    # The stored index was computed by the trained model; the reloaded weights recompute it.
    dynamic = np.load(folder / "article_dynamic.npy")
    np.testing.assert_allclose(
        a.model.article_embeddings(dynamic), np.load(folder / "article_embeddings.npy"), atol=1e-5
    )
    customers = sorted(tiny_dataset.transactions["customer_id"].astype(str).unique())[:50]
    fa = generate_candidates(a, tiny_dataset, tiny_cutoff, customers, top_k=20, filters=NO_FILTERS)
    fb = generate_candidates(b, tiny_dataset, tiny_cutoff, customers, top_k=20, filters=NO_FILTERS)
    pd.testing.assert_frame_equal(fa, fb)
    assert len(fa) == 50 * 20
    assert fa.groupby("customer_id")["rank"].apply(list).map(lambda r: r == list(range(1, 21))).all()
    # best first, cosine in [-1, 1]
    assert (fa.groupby("customer_id")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()
    assert fa["score"].between(-1.0001, 1.0001).all()


def test_same_seed_same_model(tmp_path, tiny_dataset, tiny_cutoff, trained):
    again = train_two_tower(
        tiny_dataset, tiny_cutoff, tmp_path, "again", seed=0, config=FAST_CONFIG, progress=False, publish_model=False
    )
    np.testing.assert_allclose(
        np.load(again / "article_embeddings.npy"),
        np.load(trained / "two_tower" / "v1" / "article_embeddings.npy"),
        atol=1e-6,
    )
    assert not (tmp_path / "two_tower" / "CURRENT").exists()  # publish_model=False


def test_candidates_for_a_week_the_model_saw_are_refused(trained, tiny_dataset, tiny_cutoff):
    earlier = tiny_cutoff - timedelta(days=7)
    with pytest.raises(CutoffError, match="leak"):
        generate_candidates(trained / "two_tower" / "v1", tiny_dataset, earlier, top_k=5)


def test_same_week_batches():
    week = np.array([1, 1, 1, 1, 2, 2, 2, 3])
    order = same_week_order(week, batch_size=2, seed=0)
    # week 1 gives 2 batches, week 2 one (its third example waits), week 3 none
    assert len(order) == 6 and len(set(order)) == 6
    for i in range(0, 6, 2):
        assert week[order[i]] == week[order[i + 1]]


def test_numpy_query_tower_equals_the_tensorflow_one(trained, tiny_dataset, tiny_cutoff):
    from services.candidate.features import query_features

    model = load_two_tower(trained / "two_tower" / "v1")
    ids = sorted(tiny_dataset.customers["customer_id"].astype(str))[:64] + ["f" * 64]
    feats = query_features(model.space, tiny_dataset.customers, tiny_dataset.transactions, ids, tiny_cutoff)
    tf_out = model.model.query_tower(dict(feats)).numpy()
    np.testing.assert_allclose(model.encode(feats), tf_out, atol=1e-5)


def test_data_fingerprint_changes_with_the_data(toy):
    from services.candidate.train import data_fingerprint
    from tests.candidate.conftest import toy_dataset

    same = toy_dataset()
    same.transactions = same.transactions.iloc[::-1]  # row order does not matter
    assert data_fingerprint(toy) == data_fingerprint(same)
    changed = toy_dataset()
    changed.transactions.loc[0, "price"] = 0.5
    assert data_fingerprint(toy) != data_fingerprint(changed)


def test_a_model_from_older_code_is_refused_with_a_clear_message(trained, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(trained / "two_tower" / "v1", old)
    meta = json.loads((old / "metadata.json").read_text())
    meta["artifact_format"] = 1
    (old / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="retrain"):
        load_two_tower(old)


def test_a_batch_only_model_gives_the_same_stage_one_lists_and_cannot_be_served(
    tmp_path, tiny_dataset, tiny_cutoff, trained
):
    """A ranker training week's two-tower skips the serving files; batch stage one never read them."""
    from pipeline.evaluated_candidates import candidates_at
    from services.candidate.serving import ServingModel
    from services.candidate.stage_one import TABLES_SUBDIR

    batch_only = train_two_tower(
        tiny_dataset,
        tiny_cutoff,
        tmp_path,
        "batch",
        seed=0,
        config=FAST_CONFIG,
        progress=False,
        publish_model=False,
        for_serving=False,
    )
    assert not (batch_only / TABLES_SUBDIR).exists()
    assert len(pd.read_parquet(batch_only / "customer_features.parquet")) == 0
    customers = sorted(tiny_dataset.transactions["customer_id"].astype(str).unique())[:60] + ["0" * 64]
    served = candidates_at(trained / "two_tower" / "v1", tiny_dataset, tiny_cutoff, customers)
    pd.testing.assert_frame_equal(candidates_at(batch_only, tiny_dataset, tiny_cutoff, customers), served)
    assert served["customer_id"].nunique() == len(customers)
    with pytest.raises(ValueError, match="batch stage one only"):
        ServingModel.load(batch_only)
    with pytest.raises(ValueError, match="cannot be published"):
        train_two_tower(tiny_dataset, tiny_cutoff, tmp_path, "x", config=FAST_CONFIG, progress=False, for_serving=False)
