"""Multi-gate Mixture-of-Experts ranker (Ma et al., KDD 2018), in TensorFlow (tf-keras).

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

Serving does not call Keras: :meth:`MMoERanker.to_numpy` exports the weights and
:class:`NumpyMMoE` runs the same forward pass in NumPy (about 0.1 ms for 200 candidates),
and a test checks the two agree.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import shared.config  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)


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


def _tf() -> Any:
    import tensorflow as tf

    return tf


def build_mmoe_layer_class() -> Any:
    """The MMoE layer (defined lazily so importing this module does not import TensorFlow)."""
    tf = _tf()

    class MMoELayer(tf.keras.layers.Layer):  # type: ignore[name-defined]  # tf is imported lazily, so Any
        """x [B, D] -> ([h_t [B, U] for each task], [gate_t [B, E] for each task])."""

        def __init__(self, n_experts: int, expert_units: int, n_tasks: int, l2: float = 0.0, **kw: Any):
            super().__init__(**kw)
            self.n_experts, self.expert_units, self.n_tasks, self.l2 = n_experts, expert_units, n_tasks, l2

        def build(self, input_shape: Any) -> None:
            d = int(input_shape[-1])
            reg = tf.keras.regularizers.l2(self.l2) if self.l2 else None
            self.expert_kernel = self.add_weight(
                name="expert_kernel", shape=(d, self.expert_units, self.n_experts),
                initializer="glorot_uniform", regularizer=reg)
            self.expert_bias = self.add_weight(
                name="expert_bias", shape=(self.expert_units, self.n_experts), initializer="zeros")
            # Small random gate kernels: gates start near uniform but not identical per task.
            self.gate_kernels = [self.add_weight(
                name=f"gate_kernel_{t}", shape=(d, self.n_experts),
                initializer=tf.keras.initializers.RandomNormal(stddev=0.1, seed=t), regularizer=reg)
                for t in range(self.n_tasks)]
            self.gate_biases = [self.add_weight(
                name=f"gate_bias_{t}", shape=(self.n_experts,), initializer="zeros")
                for t in range(self.n_tasks)]
            super().build(input_shape)

        def call(self, x: Any) -> Any:
            experts = tf.nn.relu(tf.einsum("bd,due->bue", x, self.expert_kernel) + self.expert_bias)
            outputs, gates = [], []
            for t in range(self.n_tasks):
                gate = tf.nn.softmax(tf.matmul(x, self.gate_kernels[t]) + self.gate_biases[t], axis=-1)
                outputs.append(tf.einsum("bue,be->bu", experts, gate))
                gates.append(gate)
            return outputs, gates

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "n_experts": self.n_experts,
                    "expert_units": self.expert_units, "n_tasks": self.n_tasks, "l2": self.l2}

    return MMoELayer


class MMoERanker:
    """Builds the Keras model (training) and exports it to NumPy (serving).

    ``keras_model`` maps standardised features ``[B, D]`` to ``{task: [B, 1]}``;
    ``gate_model`` maps them to ``{task: [B, E]}`` so gate usage can be inspected.
    """

    def __init__(self, config: MMoEConfig):
        tf = _tf()
        self.config = config
        tf.keras.utils.set_random_seed(config.seed)
        layer_cls = build_mmoe_layer_class()
        x = tf.keras.Input(shape=(config.n_features,), name="features")
        mmoe = layer_cls(config.n_experts, config.expert_units, len(config.tasks), config.l2, name="mmoe")
        task_inputs, gates = mmoe(x)
        outputs, gate_outputs = {}, {}
        for spec, h, gate in zip(config.tasks, task_inputs, gates, strict=True):
            z = tf.keras.layers.Dense(config.tower_units, activation="relu", name=f"tower_{spec.name}_hidden")(h)
            z = tf.keras.layers.Dropout(config.dropout, name=f"tower_{spec.name}_dropout")(z)
            act = "sigmoid" if spec.kind == "binary" else "linear"
            outputs[spec.name] = tf.keras.layers.Dense(1, activation=act, name=spec.name)(z)
            gate_outputs[spec.name] = tf.keras.layers.Activation("linear", name=f"gate_{spec.name}")(gate)
        self.keras_model = tf.keras.Model(x, outputs, name="mmoe_ranker")
        self.gate_model = tf.keras.Model(x, gate_outputs, name="mmoe_gates")

    def compile(self, learning_rate: float = 2e-3) -> None:
        tf = _tf()
        losses = {t.name: ("binary_crossentropy" if t.kind == "binary" else "mse") for t in self.config.tasks}
        weights = {t.name: t.loss_weight for t in self.config.tasks}
        self.keras_model.compile(
            optimizer=tf.keras.optimizers.Adam(learning_rate), loss=losses, loss_weights=weights)

    def to_numpy(self) -> dict[str, np.ndarray]:
        """All weights as named arrays (the serving artifact)."""
        mmoe = self.keras_model.get_layer("mmoe")
        out: dict[str, np.ndarray] = {
            "expert_kernel": mmoe.expert_kernel.numpy(), "expert_bias": mmoe.expert_bias.numpy(),
        }
        for t, spec in enumerate(self.config.tasks):
            out[f"gate_kernel/{spec.name}"] = mmoe.gate_kernels[t].numpy()
            out[f"gate_bias/{spec.name}"] = mmoe.gate_biases[t].numpy()
            hidden = self.keras_model.get_layer(f"tower_{spec.name}_hidden")
            final = self.keras_model.get_layer(spec.name)
            out[f"tower_w1/{spec.name}"], out[f"tower_b1/{spec.name}"] = (w.numpy() for w in hidden.weights)
            out[f"tower_w2/{spec.name}"], out[f"tower_b2/{spec.name}"] = (w.numpy() for w in final.weights)
        return out


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
        # [D, U*E] so the experts are one matrix product.
        self._expert_flat = self.w["expert_kernel"].reshape(-1, u * e)
        self._expert_bias_flat = self.w["expert_bias"].reshape(u * e)

    @property
    def task_names(self) -> list[str]:
        return self.config.task_names

    def standardise(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, dtype=np.float32) - self.mean) / self.std

    def forward(self, features: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Raw features [B, D] -> ({task: [B]}, {task: gate [B, E]})."""
        x = self.standardise(features)
        e, u = self.config.n_experts, self.config.expert_units
        experts = np.maximum(x @ self._expert_flat + self._expert_bias_flat, 0.0).reshape(-1, u, e)
        scores, gates = {}, {}
        for spec in self.config.tasks:
            n = spec.name
            gate = _softmax(x @ self.w[f"gate_kernel/{n}"] + self.w[f"gate_bias/{n}"])
            h = np.einsum("bue,be->bu", experts, gate)
            z = np.maximum(h @ self.w[f"tower_w1/{n}"] + self.w[f"tower_b1/{n}"], 0.0)
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
