"""The MMoE: hand-checked forward pass, gate softmax, task-weighted loss, NumPy export."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.ranker.keras_mmoe import MMoERanker
from services.ranker.model import DEFAULT_TASKS, MMoEConfig, NumpyMMoE, TaskSpec

pytest.importorskip("tensorflow")


def hand_model() -> MMoERanker:
    """2 features, 4 one-unit experts, a purchase (binary) and a revenue (regression) task."""
    cfg = MMoEConfig(
        n_features=2,
        tasks=[TaskSpec("purchase", "binary", 1.0), TaskSpec("revenue", "regression", 0.5)],
        n_experts=4,
        expert_units=1,
        tower_units=1,
        dropout=0.0,
        l2=0.0,
    )
    ranker = MMoERanker(cfg)
    mmoe = ranker.keras_model.get_layer("mmoe")
    # Experts e0 = relu(x0), e1 = relu(x1), e2 = relu(x0 + x1), e3 = relu(-x0).
    mmoe.expert_kernel.assign(np.array([[[1, 0, 1, -1]], [[0, 1, 1, 0]]], dtype=np.float32))
    mmoe.expert_bias.assign(np.zeros((1, 4), dtype=np.float32))
    # Purchase gate uniform; revenue gate logits [0, 0, ln 2, 0] -> weights [1, 1, 2, 1] / 5.
    for t, bias in enumerate(([0, 0, 0, 0], [0, 0, math.log(2), 0])):
        mmoe.gate_kernels[t].assign(np.zeros((2, 4), dtype=np.float32))
        mmoe.gate_biases[t].assign(np.array(bias, dtype=np.float32))
    for name in ("purchase", "revenue"):  # towers pass h through: relu(h * 1) * 1
        for layer in (f"tower_{name}_hidden", name):
            kernel, bias = ranker.keras_model.get_layer(layer).weights
            kernel.assign(np.ones((1, 1), dtype=np.float32))
            bias.assign(np.zeros(1, dtype=np.float32))
    return ranker


def test_forward_pass_by_hand() -> None:
    ranker = hand_model()
    x = np.array([[1.0, 2.0]], dtype=np.float32)
    # experts [1, 2, 3, 0]; purchase h = 6 / 4 = 1.5 -> sigmoid(1.5) = 0.8176;
    # revenue h = (1 + 2 + 2*3 + 0) / 5 = 1.8 (linear).
    out = ranker.keras_model.predict(x, verbose=0)
    assert out["purchase"].shape == (1, 1) and out["revenue"].shape == (1, 1)
    assert out["purchase"][0, 0] == pytest.approx(1 / (1 + math.exp(-1.5)), rel=1e-5)
    assert out["revenue"][0, 0] == pytest.approx(1.8, rel=1e-5)
    gates = ranker.gate_model.predict(x, verbose=0)
    assert gates["purchase"][0].tolist() == pytest.approx([0.25] * 4)
    assert gates["revenue"][0].tolist() == pytest.approx([0.2, 0.2, 0.4, 0.2], rel=1e-5)
    # The NumPy export computes the same (mean 0, std 1: no standardisation).
    numpy_model = NumpyMMoE(ranker.config, ranker.to_numpy(), np.zeros(2), np.ones(2))
    scores, np_gates = numpy_model.forward(x)
    assert scores["purchase"][0] == pytest.approx(0.81757, rel=1e-4)
    assert scores["revenue"][0] == pytest.approx(1.8, rel=1e-5)
    assert np_gates["revenue"][0].tolist() == pytest.approx([0.2, 0.2, 0.4, 0.2], rel=1e-5)


def test_loss_is_task_weighted() -> None:
    ranker = hand_model()
    ranker.compile()
    x = np.array([[1.0, 2.0]], dtype=np.float32)
    # purchase label 1: bce = -ln(0.8176) = 0.2014; revenue label 0: mse = 1.8^2 = 3.24;
    # total = 1.0 * 0.2014 + 0.5 * 3.24 = 1.8214.
    result = ranker.keras_model.evaluate(
        x, {"purchase": np.ones(1), "revenue": np.zeros(1)}, verbose=0, return_dict=True
    )
    assert result["purchase_loss"] == pytest.approx(0.2014, abs=1e-3)
    assert result["revenue_loss"] == pytest.approx(3.24, rel=1e-4)
    assert result["loss"] == pytest.approx(0.2014 + 0.5 * 3.24, abs=1e-3)


def test_default_network_shapes_gates_and_export_agree() -> None:
    cfg = MMoEConfig(n_features=7, n_experts=5, expert_units=6, tower_units=3, dropout=0.0, seed=3)
    assert cfg.n_experts >= 4 and len(cfg.tasks) >= 2 and [t.name for t in cfg.tasks] == [t.name for t in DEFAULT_TASKS]
    ranker = MMoERanker(cfg)
    x = np.random.default_rng(0).normal(size=(11, 7)).astype(np.float32)
    out = ranker.keras_model.predict(x, verbose=0)
    gates = ranker.gate_model.predict(x, verbose=0)
    assert set(out) == {"purchase", "online", "revenue"} == set(gates)
    for task in out:
        assert out[task].shape == (11, 1)
        assert gates[task].shape == (11, 5)
        assert np.allclose(gates[task].sum(axis=1), 1.0, atol=1e-5) and (gates[task] > 0).all()
    assert ((out["purchase"] > 0) & (out["purchase"] < 1)).all()
    # Gates of different tasks are different functions (one gate per task, not shared).
    assert not np.allclose(gates["purchase"], gates["online"])
    numpy_model = NumpyMMoE(cfg, ranker.to_numpy(), np.zeros(7), np.ones(7))
    scores, np_gates = numpy_model.forward(x)
    for task in out:
        assert np.allclose(scores[task], out[task][:, 0], atol=1e-5)
        assert np.allclose(np_gates[task], gates[task], atol=1e-5)


def test_numpy_model_save_load_and_standardisation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.ranker.conftest import random_model

    model = random_model(seed=4)
    model.mean[:] = 2.0
    model.std[:] = 4.0
    model.save(tmp_path)
    loaded = NumpyMMoE.load(tmp_path)
    x = np.random.default_rng(1).normal(size=(5, model.config.n_features)).astype(np.float32)
    a, b = model.forward(x)[0], loaded.forward(x)[0]
    assert all(np.array_equal(a[t], b[t]) for t in a)
    assert np.allclose(loaded.standardise(np.full((1, model.config.n_features), 6.0)), 1.0)  # (6 - 2) / 4


def test_combined_score_weights() -> None:
    from tests.ranker.conftest import random_model

    model = random_model()
    scores = {"purchase": np.array([0.5, 0.1]), "online": np.array([0.2, 0.9]), "revenue": np.array([1.0, 0.0])}
    # [0.5 + 0.5*0.2, 0.1 + 0.5*0.9] = [0.6, 0.55]; unknown task names are ignored.
    assert model.combined(scores, {"purchase": 1.0, "online": 0.5, "nope": 3.0}).tolist() == pytest.approx([0.6, 0.55])
