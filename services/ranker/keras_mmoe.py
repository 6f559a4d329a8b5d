"""The MMoE in Keras (tf-keras): the training-only half of ``model.py``.

Imported by training alone; serving runs :class:`services.ranker.model.NumpyMMoE` on the
weights :meth:`MMoERanker.to_numpy` exports, so a serving process never imports TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from services.ranker.model import MMoEConfig
from shared.config import configure_tensorflow


def _tf() -> Any:
    configure_tensorflow()
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
                name="expert_kernel",
                shape=(d, self.expert_units, self.n_experts),
                initializer="glorot_uniform",
                regularizer=reg,
            )
            self.expert_bias = self.add_weight(
                name="expert_bias", shape=(self.expert_units, self.n_experts), initializer="zeros"
            )
            # Small random gate kernels: gates start near uniform but not identical per task.
            self.gate_kernels = [
                self.add_weight(
                    name=f"gate_kernel_{t}",
                    shape=(d, self.n_experts),
                    initializer=tf.keras.initializers.RandomNormal(stddev=0.1, seed=t),
                    regularizer=reg,
                )
                for t in range(self.n_tasks)
            ]
            self.gate_biases = [
                self.add_weight(name=f"gate_bias_{t}", shape=(self.n_experts,), initializer="zeros")
                for t in range(self.n_tasks)
            ]
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
            return {
                **super().get_config(),
                "n_experts": self.n_experts,
                "expert_units": self.expert_units,
                "n_tasks": self.n_tasks,
                "l2": self.l2,
            }

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
        self.keras_model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate), loss=losses, loss_weights=weights)

    def to_numpy(self) -> dict[str, np.ndarray]:
        """All weights as named arrays (the serving artifact)."""
        mmoe = self.keras_model.get_layer("mmoe")
        out: dict[str, np.ndarray] = {
            "expert_kernel": mmoe.expert_kernel.numpy(),
            "expert_bias": mmoe.expert_bias.numpy(),
        }
        for t, spec in enumerate(self.config.tasks):
            out[f"gate_kernel/{spec.name}"] = mmoe.gate_kernels[t].numpy()
            out[f"gate_bias/{spec.name}"] = mmoe.gate_biases[t].numpy()
            hidden = self.keras_model.get_layer(f"tower_{spec.name}_hidden")
            final = self.keras_model.get_layer(spec.name)
            out[f"tower_w1/{spec.name}"], out[f"tower_b1/{spec.name}"] = (w.numpy() for w in hidden.weights)
            out[f"tower_w2/{spec.name}"], out[f"tower_b2/{spec.name}"] = (w.numpy() for w in final.weights)
        return out
