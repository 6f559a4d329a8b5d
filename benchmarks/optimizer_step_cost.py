"""Why the two-tower's id tables use Adagrad: seconds per step of an embedding table + optimiser.

    .venv/bin/python benchmarks/optimizer_step_cost.py

One id embedding table (32 wide, as the two-tower's) under Adam and under Adagrad, at the
`medium` and the `kaggle` customer counts, batch 1,024, 60 timed steps after a warm-up. Adam's
moments decay densely, so every step rewrites the whole table; Adagrad updates only the rows a
batch touches. Prints ms per step.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

STEPS, BATCH = 60, 1024


def ms_per_step(rows: int, optimizer: tf.keras.optimizers.Optimizer) -> float:
    ids_in = tf.keras.Input((1,), dtype="int32")
    hidden = tf.keras.layers.Flatten()(tf.keras.layers.Embedding(rows, 32)(ids_in))
    model = tf.keras.Model(ids_in, tf.keras.layers.Dense(1)(hidden))
    model.compile(optimizer, "mse")
    ids = np.random.default_rng(0).integers(0, rows, (BATCH * STEPS, 1))
    y = np.zeros((BATCH * STEPS, 1), dtype=np.float32)
    model.fit(ids[: 2 * BATCH], y[: 2 * BATCH], batch_size=BATCH, verbose=0)  # warm-up (tracing)
    t0 = time.perf_counter()
    model.fit(ids, y, batch_size=BATCH, verbose=0)
    return (time.perf_counter() - t0) / STEPS * 1000


def main() -> None:
    print(f"{'table rows':>12}  {'Adam ms/step':>13}  {'Adagrad ms/step':>16}")
    for rows in (137_199, 1_371_981):  # medium and kaggle customers (+1 out-of-vocabulary row)
        adam = ms_per_step(rows, tf.keras.optimizers.Adam(0.005))
        adagrad = ms_per_step(rows, tf.keras.optimizers.Adagrad(0.05))
        print(f"{rows:>12,}  {adam:>13.1f}  {adagrad:>16.1f}")


if __name__ == "__main__":
    main()
