"""Training end to end on the tiny synthetic world (stand-in candidates: no two-tower needed)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from services.ranker.features import FeatureStore, build_feature_store
from services.ranker.serving import LoadedRanker
from services.ranker.train import SINGLE_TASK_MODEL_NAME, RankerTrainConfig, train_ranker
from shared.artifacts import read_metadata, resolve_version
from shared.split import default_cutoff, label_week, purchases_by_customer, shift_cutoff
from tests.ranker.standin import standin_candidates

pytest.importorskip("tensorflow")


@pytest.mark.slow
def test_train_export_and_serve_on_tiny_world(tiny_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tx = tiny_data.transactions
    serve_cutoff = default_cutoff(tx)
    train_cutoff = shift_cutoff(serve_cutoff, 1)
    buyers = sorted(purchases_by_customer(label_week(tx, train_cutoff)))
    cands = standin_candidates(tx, train_cutoff, buyers)
    models = tmp_path / "models"
    lines: list[str] = []
    out = train_ranker(
        tx,
        tiny_data.customers,
        tiny_data.articles,
        {train_cutoff: cands},
        serve_cutoff,
        models,
        "t1",
        RankerTrainConfig(epochs=3, patience=5, verbose=0, batch_size=256),
        echo=lines.append,
        force=True,
    )  # stand-in candidates: the gate's verdict is tested in tests/pipeline/commands/test_ranker.py
    assert set(out) == {"mmoe", "single_task"}
    assert read_metadata(out["mmoe"])["publish_gate"]["forced"] is True
    assert any(line.startswith("epoch 3:") and "val_auc_purchase" in line and "val_map12" in line for line in lines)
    folder = out["mmoe"]
    assert resolve_version(models, "mmoe") == "t1"  # published
    for name in (
        "history.json",
        "history.png",
        "feature_schema.json",
        "model/mmoe_weights.npz",
        "feature_store/feature_store.npz",
        "metadata.json",
    ):
        assert (folder / name).exists(), name
    meta = read_metadata(folder)
    assert meta["cutoff"] == serve_cutoff.isoformat()
    assert meta["train_label_week_start"] == train_cutoff.isoformat()
    assert train_cutoff + timedelta(days=7) <= serve_cutoff  # labels end before serving features
    assert meta["tasks"] == ["purchase", "online", "revenue"]
    for task, usage in meta["gate_usage"].items():  # mean softmax gate per task
        assert len(usage) == 6 and sum(usage) == pytest.approx(1.0, abs=1e-3), task
    history = json.loads((folder / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    ranker = LoadedRanker.load(folder)
    assert ranker.store.cutoff == serve_cutoff
    ids = list(ranker.store.article_ids[:30])
    ranked = ranker.rank(buyers[0], ids, np.linspace(1, 0, 30), 12)
    assert len(ranked.article_ids) == 12 and np.isfinite(ranked.scores).all()
    single = LoadedRanker.load(out["single_task"])
    assert single.task_names == ["purchase"]
    assert resolve_version(models, SINGLE_TASK_MODEL_NAME) == "t1"
    # The serving store, built before training and kept on disk, is the one a fresh build makes,
    # in both artifacts; its scratch folder is gone.
    fresh = build_feature_store(tx, tiny_data.customers, tiny_data.articles, serve_cutoff)
    for store in (ranker.store, single.store):
        for name in FeatureStore._ARRAYS:
            np.testing.assert_array_equal(getattr(store, name), getattr(fresh, name), err_msg=name)
        assert list(store.customer_ids) == list(fresh.customer_ids)
    assert not [p.name for p in (models / "mmoe").iterdir() if "serving-store" in p.name]


def test_training_week_must_end_before_the_serving_cutoff(tiny_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tx = tiny_data.transactions
    cut = default_cutoff(tx)
    with pytest.raises(ValueError, match="must end by the serving cutoff"):
        train_ranker(tx, tiny_data.customers, tiny_data.articles, {cut: tx.head(0)}, cut, tmp_path, "x")


def test_candidate_lists_group_rows_by_customer_and_drop_lists_without_a_purchase() -> None:
    from services.ranker.train import candidate_lists

    customers = np.array(["b", "a", "b", "c", "a", "b"], dtype=object)
    purchase = np.array([0, 1, 1, 0, 0, 0], dtype=np.float32)
    lists = candidate_lists(customers, purchase)
    # a: rows 1, 4; b: rows 0, 2, 5; c (nothing bought) is dropped; -1 pads.
    assert lists.tolist() == [[1, 4, -1], [0, 2, 5]]


def _learnable_lists(n_customers: int, per_list: int, seed: int):  # type: ignore[no-untyped-def]
    """Lists where the bought candidate is the one with the highest hidden feature value."""
    from services.ranker.dataset import TrainingData
    from services.ranker.features import N_FEATURES

    rng = np.random.default_rng(seed)
    n = n_customers * per_list
    features = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    customers = np.repeat(np.array([f"c{i}" for i in range(n_customers)], dtype=object), per_list)
    articles = np.array([f"a{i % 500}" for i in range(n)], dtype=object)
    signal = features[:, 5] + 0.3 * rng.normal(size=n)
    purchase = np.zeros(n, dtype=np.float32)
    best = signal.reshape(n_customers, per_list).argmax(axis=1) + np.arange(n_customers) * per_list
    purchase[best] = 1.0
    truth = {customers[i]: {articles[i]} for i in best}
    labels = {"purchase": purchase, "online": purchase * (rng.random(n) < 0.5), "revenue": purchase * 0.7}
    return TrainingData(customers, articles, rng.normal(size=n), features, labels, truth)


@pytest.mark.slow
def test_listwise_loss_learns_the_order_within_lists() -> None:
    from services.ranker.train import fit_mmoe

    data = _learnable_lists(600, 20, seed=0)
    result = fit_mmoe(data, RankerTrainConfig(loss="listwise", epochs=8, patience=8, verbose=0), echo=lambda _: None)
    # Random order gives MAP@12 ~ 0.15 on lists of 20; the rule is learnable to ~0.7.
    assert result.metrics["val_map12"] > 0.5
    assert set(result.model.task_names) == {"purchase", "online", "revenue"}
    scores, _ = result.model.forward(data.features[:50])
    assert all(np.isfinite(v).all() for v in scores.values())


def test_unknown_loss_is_refused() -> None:
    from services.ranker.train import fit_mmoe

    with pytest.raises(ValueError, match="unknown ranker loss"):
        fit_mmoe(_learnable_lists(20, 5, seed=0), RankerTrainConfig(loss="pairwise"), echo=lambda _: None)
