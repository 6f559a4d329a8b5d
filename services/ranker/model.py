"""Multi-gate Mixture-of-Experts ranker (Ma et al., KDD 2018): configuration and the NumPy forward pass.

Shapes (B rows, D features, E experts, U expert units, T tasks):

    x [B, D] --standardise--> experts: f_e(x) = relu(x W_e + b_e)     -> [B, U, E]
    gate_t(x) = softmax(x G_t + c_t)                                  -> [B, E], one per task
    h_t = sum_e gate_t(x)[e] * f_e(x)                                 -> [B, U]
    y_t = tower_t(h_t)  (relu MLP, then sigmoid or linear)            -> [B]

Tasks, chosen because a retailer acts on each of them:

- ``purchase`` (binary): the customer buys the candidate in the label week. This is what
  MAP@12 measures and what the combined score is mostly made of.
- ``online`` (binary): the customer buys it in the online channel (sales_channel_id 2).
  Only online purchases can be attributed to what the web page showed; the task shares
  the purchase signal but weighs the web shopper's taste, which differs from in-store.
- ``revenue`` (regression): log1p(money spent on the candidate in the week / the shop's
  mean price), 0 when not bought. A shop ranks by expected value, not only by purchase
  probability: two likely purchases are not worth the same.

The tasks are correlated but not identical, which is exactly where MMoE's per-task gates
help over a shared bottom: each task can lean on a different mix of experts. The loss is
the weighted sum of the per-task losses (``TaskSpec.loss_weight``); the served score is a
weighted sum of the task outputs (``score_weights``, configurable at serving time).

This module holds what serving needs (the configuration and :class:`NumpyMMoE`) and never
imports TensorFlow. The Keras model trains in ``keras_mmoe.py`` (training only);
``MMoERanker.to_numpy`` exports its weights and :class:`NumpyMMoE` runs the same forward pass
in NumPy (about 0.1 ms for 200 candidates); a test checks the two agree.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str  # "binary" or "regression"
    loss_weight: float = 1.0


DEFAULT_TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("purchase", "binary", 1.0),
    TaskSpec("online", "binary", 0.5),
    TaskSpec("revenue", "regression", 0.5),
)
SINGLE_TASK: tuple[TaskSpec, ...] = (TaskSpec("purchase", "binary", 1.0),)
DEFAULT_SCORE_WEIGHTS = {"purchase": 1.0}
# Rows per step of the NumPy forward pass: a block's intermediates (4,096 x 192 experts) stay
# in cache (benchmarks/bench_rerank.py: 1,024-16,384 equal, a single 400k-row pass 40 % slower).
FORWARD_ROWS = 4096


@dataclass
class MMoEConfig:
    n_features: int
    tasks: list[TaskSpec] = field(default_factory=lambda: list(DEFAULT_TASKS))
    n_experts: int = 6
    expert_units: int = 32
    tower_units: int = 16
    dropout: float = 0.1
    l2: float = 1e-5
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["tasks"] = [asdict(t) for t in self.tasks]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MMoEConfig:
        d = dict(d)
        d["tasks"] = [TaskSpec(**t) for t in d["tasks"]]
        return cls(**d)

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class NumpyMMoE:
    """The exported MMoE: standardise, experts, gates, towers; NumPy only (no TF at serving)."""

    def __init__(self, config: MMoEConfig, weights: dict[str, np.ndarray], mean: np.ndarray, std: np.ndarray):
        self.config = config
        self.w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        e, u = self.config.n_experts, self.config.expert_units
        # [D, U*E] so the experts are one matrix product; every task's gate likewise [D, T*E].
        self._expert_flat = self.w["expert_kernel"].reshape(-1, u * e)
        self._expert_bias_flat = self.w["expert_bias"].reshape(u * e)
        names = self.config.task_names
        self._gate_flat = np.concatenate([self.w[f"gate_kernel/{n}"] for n in names], axis=1)
        self._gate_bias_flat = np.concatenate([self.w[f"gate_bias/{n}"] for n in names])

    @property
    def task_names(self) -> list[str]:
        return self.config.task_names

    def standardise(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, dtype=np.float32) - self.mean) / self.std

    def forward(self, features: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Raw features [B, D] -> ({task: [B]}, {task: gate [B, E]}), FORWARD_ROWS rows at a time:
        the batch re-ranker scores 400k rows a call, and one pass over all of them moved
        hundreds of MB of intermediates per step (each row's result is the same either way)."""
        features = np.asarray(features, dtype=np.float32)
        names = self.config.task_names
        n, e = len(features), self.config.n_experts
        scores = {t: np.empty(n, dtype=np.float32) for t in names}
        gates = {t: np.empty((n, e), dtype=np.float32) for t in names}
        for start in range(0, max(n, 1), FORWARD_ROWS):
            block_scores, block_gates = self._forward_block(features[start : start + FORWARD_ROWS])
            for t in names:
                scores[t][start : start + FORWARD_ROWS] = block_scores[t]
                gates[t][start : start + FORWARD_ROWS] = block_gates[t]
        return scores, gates

    def _forward_block(self, features: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        x = self.standardise(features)
        e, u = self.config.n_experts, self.config.expert_units
        experts = x @ self._expert_flat
        experts += self._expert_bias_flat
        np.maximum(experts, 0.0, out=experts)
        experts = experts.reshape(-1, u, e)
        gate_logits = x @ self._gate_flat
        gate_logits += self._gate_bias_flat
        scores, gates = {}, {}
        for j, spec in enumerate(self.config.tasks):
            n = spec.name
            gate = _softmax(gate_logits[:, j * e : (j + 1) * e])
            h = (experts @ gate[:, :, None])[:, :, 0]  # sum over experts of gate x expert output
            z = h @ self.w[f"tower_w1/{n}"]
            z += self.w[f"tower_b1/{n}"]
            np.maximum(z, 0.0, out=z)
            y = (z @ self.w[f"tower_w2/{n}"] + self.w[f"tower_b2/{n}"])[:, 0]
            # sigmoid via tanh: no overflow for extreme logits (an unseen feature value far off)
            scores[n] = 0.5 * (1.0 + np.tanh(0.5 * y)) if spec.kind == "binary" else y
            gates[n] = gate
        return scores, gates

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        return self.forward(features)[0]

    def combined(self, task_scores: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
        """sum_t weights[t] * task_scores[t]; tasks the model lacks are ignored."""
        n = len(next(iter(task_scores.values())))
        out = np.zeros(n, dtype=np.float64)
        for task, w in weights.items():
            if task in task_scores and w:
                out += w * task_scores[task].astype(np.float64)
        return out

    # --- persistence ------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {k.replace("/", "__"): v for k, v in self.w.items()}
        np.savez(directory / "mmoe_weights.npz", **arrays, feature_mean=self.mean, feature_std=self.std)
        (directory / "mmoe_config.json").write_text(json.dumps(self.config.to_json(), indent=2))

    @classmethod
    def load(cls, directory: Path) -> NumpyMMoE:
        directory = Path(directory)
        config = MMoEConfig.from_json(json.loads((directory / "mmoe_config.json").read_text()))
        with np.load(directory / "mmoe_weights.npz") as npz:
            arrays = {k.replace("__", "/"): npz[k] for k in npz.files}
        mean, std = arrays.pop("feature_mean"), arrays.pop("feature_std")
        return cls(config, arrays, mean, std)
