"""Train the MMoE ranker on one labelled candidate week and export it with its feature store.

Validation holds out a random 20 % of that week's customers (their rows are never trained
on). After every epoch it reports per-task AUC and the MAP@12 of the validation customers'
re-ranked candidate lists against everything they bought that week; training stops when
the monitor (purchase AUC by default, see ``RankerTrainConfig.monitor``) has not improved for
``patience`` epochs, and the best epoch's weights are kept.
The combined-score weights are then chosen on the same validation customers from a small
grid (the purchase task always has weight 1).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.ranker.baseline_order import BASELINE_ORDERINGS, BaselineOrder
from services.ranker.dataset import (
    RowSelection,
    TrainingData,
    build_training_data,
    concat_weeks,
    downsample_negatives,
    validation_customers,
)
from services.ranker.features import FEATURE_NAMES, FeatureStore, build_feature_store
from services.ranker.keras_mmoe import MMoERanker
from services.ranker.model import DEFAULT_TASKS, SINGLE_TASK, MMoEConfig, NumpyMMoE
from services.ranker.serving import MODEL_SUBDIR, SCHEMA_FILE, STORE_SUBDIR
from services.ranker.settings import MODEL_NAME
from services.ranker.validation import ValidationLists, auc
from shared.artifacts import atomic_model_dir, library_versions, model_root, publish
from shared.config import configure_tensorflow
from shared.memory import memory_note, release_free_memory

# TensorFlow is imported lazily, inside the functions that train (importing this module stays
# cheap); the Keras 2 setting it reads at import is put in place once, here.
configure_tensorflow()

log = logging.getLogger(__name__)

SINGLE_TASK_MODEL_NAME = "mmoe_single_task"
WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0)


@dataclass
class RankerTrainConfig:
    epochs: int = 30
    batch_size: int = 1024
    learning_rate: float = 2e-3
    patience: int = 4
    # Early-stopping monitor (higher is better). Purchase AUC over every validation row, not
    # MAP@12: on a few hundred validation customers MAP@12 jumps between epochs and picked
    # epoch 2 while AUC was still improving (observed on `small`).
    monitor: str = "val_auc_purchase"
    max_negatives_per_positive: float = 30.0
    val_fraction: float = 0.2
    n_experts: int = 6
    expert_units: int = 32
    tower_units: int = 16
    dropout: float = 0.1
    seed: int = 0
    single_task: bool = False
    # "pointwise": binary cross-entropy per candidate row (negatives down-sampled);
    # "listwise": the purchase task is a softmax over each customer's whole candidate list
    # (what MAP@12 rewards: order within a list, not calibration across customers), the
    # other tasks stay pointwise on the same rows. See fit_listwise_epoch. On `small` (8
    # training weeks, held-out week, 3 seeds each) the two are equal within noise: test MAP@12
    # 0.0647 / 0.0635 / 0.0605 pointwise, 0.0636 / 0.0641 / 0.0638 listwise (listwise varies
    # less between seeds); pointwise stays the default as the cheaper one.
    loss: str = "pointwise"
    lists_per_batch: int = 32
    verbose: int = 2  # Keras: 1 = progress bar, 2 = one line per epoch, 0 = silent


@dataclass
class TrainResult:
    model: NumpyMMoE
    history: list[dict[str, float]]
    best_epoch: int
    gate_usage: dict[str, list[float]]
    score_weights: dict[str, float]
    metrics: dict[str, float]
    config: RankerTrainConfig
    extra: dict[str, Any] = field(default_factory=dict)


def _standardisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    # A constant column (e.g. an indicator that never fires this week) stays 0 after centring.
    std = np.where(std < 1e-6, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


def _validation_row(
    ranker: Any,
    standardisation: tuple[np.ndarray, np.ndarray],
    val: TrainingData,
    lists: ValidationLists,
    tasks: list[Any],
    epoch: int,
    loss: float,
) -> dict[str, float]:
    """One epoch's validation figures: AUC or RMSE per task, MAP@12 of the purchase head's order.

    Scored by the NumPy twin that serving runs (tests/ranker/test_model.py: equal to Keras),
    block by block from the raw features: Keras' predict copied the 2.3M standardised rows
    of Kaggle scale into tensors every epoch."""
    preds = NumpyMMoE(ranker.config, ranker.to_numpy(), *standardisation).forward(val.features)[0]
    row: dict[str, float] = {"epoch": epoch, "loss": loss}
    for spec in tasks:
        if spec.kind == "binary":
            row[f"val_auc_{spec.name}"] = auc(val.labels[spec.name], preds[spec.name])
        else:
            row[f"val_rmse_{spec.name}"] = float(np.sqrt(np.mean((preds[spec.name] - val.labels[spec.name]) ** 2)))
    row["val_map12"] = lists.map_at_k(preds["purchase"])
    return row


def _final_metrics(
    val: TrainingData,
    lists: ValidationLists,
    tasks: list[Any],
    task_scores: dict[str, np.ndarray],
    weighted_map: float,
    best_map: float,
    baseline_map: float,
    best_epoch: int,
) -> dict[str, float]:
    metrics = {
        "val_map12": weighted_map,
        "val_map12_purchase_only": best_map,
        "val_map12_two_tower_order": baseline_map,
        "best_epoch": float(best_epoch),
    }
    # The publish gate's yardsticks: each baseline's order of the same validation lists.
    for name in BASELINE_ORDERINGS:
        order = BaselineOrder(name).predict(val.features)["purchase"]
        metrics[f"val_map12_baseline_{name}"] = lists.map_at_k(order)
    for spec in tasks:
        if spec.kind == "binary":
            metrics[f"val_auc_{spec.name}"] = auc(val.labels[spec.name], task_scores[spec.name])
    return metrics


def _epochs(
    ranker: Any,
    config: RankerTrainConfig,
    tasks: list[Any],
    x_train: np.ndarray,
    y_train: dict[str, np.ndarray],
    standardisation: tuple[np.ndarray, np.ndarray],
    val: TrainingData,
    val_lists: ValidationLists,
    train_customers: np.ndarray,
    echo: Callable[[str], None],
) -> tuple[list[dict[str, float]], int, float]:
    """The epoch loop with early stopping on ``config.monitor``; the ranker ends on its best
    epoch's weights. Returns (history, best epoch, that epoch's validation MAP@12)."""
    if config.loss == "listwise":
        lists = candidate_lists(train_customers, y_train["purchase"])
        step = listwise_step(ranker, tasks, config.learning_rate)
        echo(
            f"ranker: listwise purchase loss over {len(lists):,} training lists with a purchase "
            f"(up to {lists.shape[1]} candidates each)"
        )
    history: list[dict[str, float]] = []
    best_value, best_map, best_epoch, best_weights, waited = -np.inf, -1.0, 0, None, 0
    rng = np.random.default_rng(config.seed)
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        if config.loss == "listwise":
            loss = fit_listwise_epoch(step, lists, x_train, y_train, config.lists_per_batch, rng)
        else:
            fit = ranker.keras_model.fit(
                x_train, y_train, batch_size=config.batch_size, epochs=1, shuffle=True, verbose=config.verbose
            )
            loss = float(fit.history["loss"][-1])
        row = _validation_row(ranker, standardisation, val, val_lists, tasks, epoch, loss)
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        echo("epoch {epoch}: ".format(**row) + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch",)))
        value = row[config.monitor]
        if value > best_value + 1e-5:
            best_value, best_map, best_epoch = value, row["val_map12"], epoch
            best_weights, waited = ranker.keras_model.get_weights(), 0
        else:
            waited += 1
            if waited >= config.patience:
                echo(f"early stop: no {config.monitor} gain for {config.patience} epochs; best epoch {best_epoch}")
                break
    if best_weights is None:  # the monitor was never defined (e.g. no positive in validation)
        best_epoch, best_map = len(history), history[-1]["val_map12"]
    else:
        ranker.keras_model.set_weights(best_weights)
    return history, best_epoch, best_map


def fit_mmoe(data: TrainingData, config: RankerTrainConfig, echo: Callable[[str], None] = print) -> TrainResult:
    """Train on ``data`` (already labelled candidates), validating on held-out customers."""
    import tensorflow as tf

    if config.loss not in ("pointwise", "listwise"):
        raise ValueError(f"unknown ranker loss {config.loss!r}: use 'pointwise' or 'listwise'")
    tasks = list(SINGLE_TASK if config.single_task else DEFAULT_TASKS)
    is_val = (
        data.is_validation
        if data.is_validation is not None
        else validation_customers(data.customer_ids, config.val_fraction, config.seed)
    )
    train_idx = np.flatnonzero(~is_val)
    if data.negatives_sampled and config.loss != "pointwise":
        raise ValueError("the training rows were down-sampled (RowSelection): a list loss needs whole lists")
    if config.loss == "pointwise" and not data.negatives_sampled:  # a list loss needs every candidate of a list
        kept = downsample_negatives(data.labels["purchase"][train_idx], config.max_negatives_per_positive, config.seed)
        train_idx = train_idx[kept]
    val = data.subset(np.flatnonzero(is_val))
    if len(train_idx) == 0 or len(val) == 0 or data.labels["purchase"][train_idx].sum() == 0:
        raise ValueError(
            "not enough labelled candidates to train and validate the ranker "
            f"({len(train_idx)} train rows, {len(val)} validation rows)"
        )
    mean, std = _standardisation(data.features[train_idx])
    x_train = (data.features[train_idx] - mean) / std
    y_train = {t.name: data.labels[t.name][train_idx] for t in tasks}

    mmoe_config = MMoEConfig(
        n_features=len(FEATURE_NAMES),
        tasks=tasks,
        n_experts=config.n_experts,
        expert_units=config.expert_units,
        tower_units=config.tower_units,
        dropout=config.dropout,
        seed=config.seed,
    )
    ranker = MMoERanker(mmoe_config)
    ranker.compile(config.learning_rate)
    val_lists = ValidationLists(val.customer_ids, val.article_ids, val.truth)
    baseline_map = val_lists.map_at_k(val.scores)
    echo(
        f"ranker: {len(train_idx):,} train rows ({int(y_train['purchase'].sum()):,} positive), "
        f"{len(val):,} validation rows over {len(val.truth):,} customers; "
        f"two-tower order on validation: MAP@12 {baseline_map:.4f} ({memory_note()})"
    )

    history, best_epoch, best_map = _epochs(
        ranker, config, tasks, x_train, y_train, (mean, std), val, val_lists, data.customer_ids[train_idx], echo
    )
    tf.keras.backend.clear_session()

    model = NumpyMMoE(mmoe_config, ranker.to_numpy(), mean, std)
    task_scores, gates = model.forward(val.features)
    gate_usage = {t: [round(float(v), 4) for v in g.mean(axis=0)] for t, g in gates.items()}
    weights, weighted_map = choose_score_weights(model, task_scores, val_lists)
    metrics = _final_metrics(val, val_lists, tasks, task_scores, weighted_map, best_map, baseline_map, best_epoch)
    echo(
        f"ranker: best epoch {best_epoch}; score weights {weights} -> validation MAP@12 {weighted_map:.4f} "
        f"(two-tower order {baseline_map:.4f}); gate usage {gate_usage} ({memory_note()})"
    )
    return TrainResult(
        model,
        history,
        best_epoch,
        gate_usage,
        weights,
        metrics,
        config,
        {"train_rows": int(len(train_idx)), "val_rows": int(len(val)), "val_customers": len(val.truth)},
    )


def candidate_lists(customer_ids: np.ndarray, purchase: np.ndarray) -> np.ndarray:
    """int64 [n_lists, L]: row indices of each customer's candidates, -1 padded; only the
    lists with at least one purchase (a list without one says nothing about order)."""
    codes, inverse = np.unique(customer_ids.astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(codes)))
    lengths = np.bincount(inverse, minlength=len(codes))
    has_purchase = np.bincount(inverse, weights=purchase > 0, minlength=len(codes)) > 0
    out = np.full((len(codes), int(lengths.max()) if len(codes) else 0), -1, dtype=np.int64)
    for j in range(out.shape[1]):
        present = lengths > j
        out[present, j] = order[starts[present] + j]
    return out[has_purchase]


def listwise_step(ranker: MMoERanker, tasks: list[Any], learning_rate: float) -> Callable[..., Any]:
    """One optimiser step on a batch of padded lists: x [b, L, D], mask [b, L], labels {task: [b, L]}.

    purchase: softmax cross-entropy of each list against its purchases (spread evenly over
    them), on the logit of the purchase head (its sigmoid is monotone, so serving's ranking by
    the head's output is the ranking this loss trains); other tasks: their pointwise loss on
    the real (unpadded) rows. Task losses are weighted as in the pointwise model.
    """
    import tensorflow as tf

    model = ranker.keras_model
    optimizer = tf.keras.optimizers.Adam(learning_rate)
    eps = 1e-6

    @tf.function(reduce_retracing=True)
    def step(x: Any, mask: Any, labels: dict[str, Any]) -> Any:
        b, n = tf.shape(x)[0], tf.shape(x)[1]
        with tf.GradientTape() as tape:
            out = model(tf.reshape(x, [b * n, -1]), training=True)
            total = tf.add_n(model.losses) if model.losses else 0.0
            real = tf.reduce_sum(mask)
            for spec in tasks:
                pred = tf.reshape(out[spec.name], [b, n])
                y = labels[spec.name]
                if spec.name == "purchase":
                    p = tf.clip_by_value(pred, eps, 1.0 - eps)
                    logits = tf.where(mask > 0, tf.math.log(p) - tf.math.log1p(-p), -1e9)
                    target = y * mask / tf.maximum(tf.reduce_sum(y * mask, axis=1, keepdims=True), 1.0)
                    task_loss = -tf.reduce_mean(tf.reduce_sum(target * tf.nn.log_softmax(logits, axis=1), axis=1))
                elif spec.kind == "binary":
                    p = tf.clip_by_value(pred, eps, 1.0 - eps)
                    bce = -(y * tf.math.log(p) + (1.0 - y) * tf.math.log1p(-p))
                    task_loss = tf.reduce_sum(bce * mask) / real
                else:
                    task_loss = tf.reduce_sum(tf.square(pred - y) * mask) / real
                total += spec.loss_weight * task_loss
        grads = tape.gradient(total, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return total

    return step


def fit_listwise_epoch(
    step: Callable[..., Any],
    lists: np.ndarray,
    x: np.ndarray,
    y: dict[str, np.ndarray],
    lists_per_batch: int,
    rng: np.random.Generator,
) -> float:
    """One pass over the lists in random order; returns the mean batch loss."""
    shuffled = lists[rng.permutation(len(lists))]
    losses = []
    for s in range(0, len(shuffled), lists_per_batch):
        rows = shuffled[s : s + lists_per_batch]
        rows = rows[:, : max(1, int((rows >= 0).sum(axis=1).max()))]  # trim padding past the longest list
        mask = (rows >= 0).astype(np.float32)
        safe = np.maximum(rows, 0)
        labels = {k: v[safe] * mask for k, v in y.items()}
        losses.append(float(step(x[safe], mask, labels)))
    return float(np.mean(losses)) if losses else float("nan")


def choose_score_weights(
    model: NumpyMMoE, task_scores: dict[str, np.ndarray], val_lists: ValidationLists
) -> tuple[dict[str, float], float]:
    """Best combined-score weights on validation customers (purchase weight fixed at 1)."""
    others = [t for t in model.task_names if t != "purchase"]
    best: tuple[float, dict[str, float]] = (-1.0, {"purchase": 1.0})
    for combo in itertools.product(WEIGHT_GRID, repeat=len(others)):
        weights = {"purchase": 1.0, **dict(zip(others, combo, strict=True))}
        score = model.combined(task_scores, weights)
        value = val_lists.map_at_k(score)
        if value > best[0] + 1e-6:  # ties keep the simpler (earlier, smaller) weights
            best = (value, weights)
    return best[1], best[0]


def plot_history(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].plot(epochs, [h["loss"] for h in history], marker="o")
    axes[0].set_title("training loss (task-weighted)")
    for key in sorted(k for k in history[0] if k.startswith("val_auc_")):
        axes[1].plot(epochs, [h[key] for h in history], marker="o", label=key[len("val_auc_") :])
    axes[1].set_title("validation AUC per task")
    axes[1].legend()
    axes[2].plot(epochs, [h["val_map12"] for h in history], marker="o")
    axes[2].set_title("validation MAP@12 (re-ranked)")
    for ax in axes:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@dataclass(frozen=True)
class SavedFeatureStore:
    """A feature store already written by :meth:`FeatureStore.save`: exports link its files.

    At Kaggle scale, building the serving store after the MMoE fit (TensorFlow keeps ~3 GiB
    resident) was the ranker stage's memory peak, 13.75 GiB; built first and kept on disk,
    it costs no memory when the model is exported."""

    directory: Path
    cutoff: date

    def save(self, directory: Path) -> None:
        def link(src: str, dst: str) -> None:
            try:
                os.link(src, dst)
            except OSError:  # another file system: copy
                shutil.copy2(src, dst)

        shutil.copytree(self.directory, directory, copy_function=link, dirs_exist_ok=True)


@contextmanager
def serving_store_on_disk(
    transactions: pd.DataFrame, customers: pd.DataFrame, articles: pd.DataFrame, cutoff: date, models_dir: Path
) -> Iterator[SavedFeatureStore]:
    """Build the serving feature store, save it beside the ranker versions, let it go; removed after."""
    root = model_root(models_dir, MODEL_NAME)
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".serving-store.tmp-", dir=root))
    try:
        store = build_feature_store(transactions, customers, articles, cutoff)
        store.save(scratch)
        saved = SavedFeatureStore(scratch, store.cutoff)
        del store
        release_free_memory()
        yield saved
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def export_ranker(
    result: TrainResult,
    serve_store: FeatureStore | SavedFeatureStore,
    models_dir: Path,
    version: str,
    metadata: dict[str, Any],
    name: str = MODEL_NAME,
    make_current: bool = True,
) -> Path:
    """Write ``<models_dir>/<name>/<version>/`` atomically (model, feature store, schema, history)."""
    meta = {
        "cutoff": serve_store.cutoff.isoformat(),
        "tasks": result.model.task_names,
        "score_weights": result.score_weights,
        "gate_usage": result.gate_usage,
        "metrics": result.metrics,
        "best_epoch": result.best_epoch,
        "train_config": asdict(result.config),
        "feature_schema": FEATURE_NAMES,
        "mmoe": result.model.config.to_json(),
        "library_versions": library_versions("tensorflow", "tf-keras", "numpy", "pandas"),
        **result.extra,
        **metadata,
    }
    with atomic_model_dir(models_dir, name, version, meta) as tmp:
        result.model.save(tmp / MODEL_SUBDIR)
        serve_store.save(tmp / STORE_SUBDIR)
        (tmp / SCHEMA_FILE).write_text(
            json.dumps(
                {
                    "feature_names": FEATURE_NAMES,
                    "store_cutoff": serve_store.cutoff.isoformat(),
                    "defaults": "see services/ranker/features.py module docstring",
                },
                indent=2,
            )
        )
        (tmp / "history.json").write_text(json.dumps(result.history, indent=2))
        plot_history(result.history, tmp / "history.png")
    if make_current:
        publish(models_dir, name, version)
    return Path(models_dir) / name / version


def export_baseline_ranker(
    ordering: str,
    serve_store: FeatureStore | SavedFeatureStore,
    models_dir: Path,
    version: str,
    metadata: dict[str, Any],
) -> Path:
    """A ranker artifact that serves ``baseline:<ordering>`` (no network; the same feature store)."""
    meta = {
        "cutoff": serve_store.cutoff.isoformat(),
        "tasks": ["purchase"],
        "score_weights": {"purchase": 1.0},
        "feature_schema": FEATURE_NAMES,
        **metadata,
        "ordering": f"baseline:{ordering}",
    }
    with atomic_model_dir(models_dir, MODEL_NAME, version, meta) as tmp:
        serve_store.save(tmp / STORE_SUBDIR)
        (tmp / SCHEMA_FILE).write_text(
            json.dumps(
                {
                    "feature_names": FEATURE_NAMES,
                    "store_cutoff": serve_store.cutoff.isoformat(),
                    "defaults": "see services/ranker/features.py module docstring",
                },
                indent=2,
            )
        )
    return Path(models_dir) / MODEL_NAME / version


def _incumbent(models_dir: Path) -> tuple[str | None, bool]:
    """(published ranker version, whether it passed its own gate) or (None, False)."""
    from shared.artifacts import ArtifactError, model_dir, read_metadata

    try:
        folder = model_dir(models_dir, MODEL_NAME)
    except ArtifactError:
        return None, False
    gate = read_metadata(folder).get("publish_gate") or {}
    return folder.name, gate.get("action", "publish") == "publish" and not gate.get("forced", False)


def train_ranker(
    transactions: pd.DataFrame,
    customers: pd.DataFrame,
    articles: pd.DataFrame,
    candidates_by_week: dict[date, pd.DataFrame],
    serve_cutoff: date,
    models_dir: Path,
    version: str,
    config: RankerTrainConfig | None = None,
    with_single_task: bool = True,
    metadata: dict[str, Any] | None = None,
    echo: Callable[[str], None] = print,
    force: bool = False,
) -> dict[str, Path]:
    """The whole training step: for each training week (its cutoff -> its candidates), features
    strictly before that cutoff and labels of the week after it; fit; export with a feature store
    built strictly before ``serve_cutoff``; publish through the gate (services/ranker/gate.py).
    ``candidates_by_week`` is consumed (each week's frame is let go once it is labelled)."""
    config = config or RankerTrainConfig()
    if not candidates_by_week:
        raise ValueError("no training week given")
    for week in candidates_by_week:
        if week + timedelta(days=7) > serve_cutoff:
            raise ValueError(f"the training label week starting {week} must end by the serving cutoff {serve_cutoff}")
    # The serving store first, while nothing but the data is resident (see SavedFeatureStore).
    with serving_store_on_disk(transactions, customers, articles, serve_cutoff, models_dir) as serve_store:
        echo(f"ranker: serving feature store built strictly before {serve_cutoff} ({memory_note()})")
        t0 = time.perf_counter()
        weeks: dict[str, TrainingData] = {}
        for week in sorted(candidates_by_week):
            # Taken out of the dict: a Kaggle-scale week's candidates are GBs, not needed once labelled.
            candidates = candidates_by_week.pop(week)
            store = build_feature_store(transactions, customers, articles, week)
            selection = RowSelection(
                config.val_fraction,
                config.max_negatives_per_positive if config.loss == "pointwise" else None,
                config.seed,
            )
            weeks[week.isoformat()] = build_training_data(candidates, transactions, store, week, selection=selection)
            del store
            release_free_memory()
            echo(
                f"ranker: {len(weeks[week.isoformat()]):,} labelled candidate rows for the week of {week} "
                f"({int(weeks[week.isoformat()].labels['purchase'].sum()):,} bought) kept of {len(candidates):,}: "
                f"validation lists whole, training negatives down-sampled before features ({memory_note()})"
            )
        meta = {"train_label_weeks": sorted(weeks), "train_label_week_start": max(weeks), **(metadata or {})}
        data = concat_weeks(weeks)
        del weeks
        echo(f"ranker: training data ready in {time.perf_counter() - t0:.1f}s ({memory_note()})")
        result = fit_mmoe(data, config, echo)
        single = (
            fit_mmoe(data, RankerTrainConfig(**{**asdict(config), "single_task": True}), echo)
            if with_single_task
            else None
        )
        del data
        release_free_memory()
        return _gate_and_export(result, single, serve_store, models_dir, version, meta, force, echo)


def _gate_and_export(
    result: TrainResult,
    single: TrainResult | None,
    serve_store: SavedFeatureStore,
    models_dir: Path,
    version: str,
    meta: dict[str, Any],
    force: bool,
    echo: Callable[[str], None],
) -> dict[str, Path]:
    """Export the MMoE (and the single-task ablation), publishing what the gate decides."""
    from services.ranker.gate import decide

    incumbent, incumbent_passed = _incumbent(models_dir)
    # The incumbent's feature store reaches into the validation weeks (it was built at a later
    # cutoff than they start), so it cannot be scored on them without leakage: the gate
    # compares with the baselines, and keeps an incumbent that passed its own gate.
    gate = decide(result.metrics, incumbent, None, incumbent_passed, force)
    meta["publish_gate"] = gate.to_json()
    echo(f"ranker: publish gate: {gate.action.upper()}: {gate.reason} ({memory_note()})")
    out: dict[str, Path] = {
        "mmoe": export_ranker(result, serve_store, models_dir, version, meta, make_current=gate.action == "publish")
    }
    echo(f"ranker: exported {out['mmoe']}{' and published' if gate.action == 'publish' else ' (not published)'}")
    if gate.action == "publish_baseline":
        out["baseline"] = export_baseline_ranker(
            gate.best_baseline, serve_store, models_dir, f"{version}-baseline-{gate.best_baseline}", meta
        )
        publish(models_dir, MODEL_NAME, out["baseline"].name)
        echo(
            f"ranker: WARNING: the MMoE lost to baseline {gate.best_baseline}; published {out['baseline']} "
            f"(serves baseline:{gate.best_baseline}); --force publishes the MMoE anyway"
        )
    elif gate.action == "keep_incumbent":
        echo(f"ranker: WARNING: the MMoE lost ({gate.reason}); CURRENT still names {incumbent}")
    if single is not None:
        out["single_task"] = export_ranker(single, serve_store, models_dir, version, meta, name=SINGLE_TASK_MODEL_NAME)
        echo(f"ranker: exported single-task ablation {out['single_task']}")
    return out
