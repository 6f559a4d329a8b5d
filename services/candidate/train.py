"""Train the two-tower model on purchases before a cutoff and export a versioned artifact.

Training pairs come from the ``train_weeks`` weeks before the cutoff (features as of each
week's start, see features.training_examples); validation is recall@k on the week after
the cutoff, computed each epoch with the exact index; early stopping keeps the best epoch.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from services.candidate.artifact import ARTIFACT_FORMAT, save_customer_snapshot
from services.candidate.features import (
    ARTICLE_CAT_COLUMNS,
    CUSTOMER_CAT_COLUMNS,
    FeatureSpace,
    article_dynamic_features,
    article_stats,
    article_table,
    build_feature_space,
    popular_articles,
    purchases_in_week,
    query_features,
    training_examples,
)
from services.candidate.index import ExactIndex
from services.candidate.settings import MODEL_NAME, TwoTowerTrainConfig
from services.candidate.stage_one import TABLES_SUBDIR, StageOneConfig, build_tables
from shared.artifacts import atomic_model_dir, library_versions, publish
from shared.config import configure_tensorflow
from shared.memory import memory_note

# TensorFlow is imported lazily, inside the functions that train (importing this module stays
# cheap); the Keras 2 setting it reads at import is put in place once, here.
configure_tensorflow()


def _log(msg: str, progress: bool) -> None:
    if progress:
        click.echo(f"[train two_tower] {msg} ({memory_note()})")


def recall_at_k(
    model: Any,
    space: FeatureSpace,
    customers: pd.DataFrame,
    transactions: pd.DataFrame,
    cutoff: pd.Timestamp,
    truth: dict[str, set[str]],
    k: int,
) -> float:
    """Mean over ``truth``'s customers of |top-k ∩ bought| / |bought| (features as of ``cutoff``)."""
    ids = np.array(sorted(truth), dtype=object)
    feats = query_features(space, customers, transactions, ids, cutoff)
    q = model.query_tower(dict(feats)).numpy()
    index = ExactIndex(model.article_embeddings(article_dynamic_features(space, transactions, cutoff)))
    total = 0.0
    for s in range(0, len(ids), 2048):
        top, _ = index.search(q[s : s + 2048], k)
        for row, cust in enumerate(ids[s : s + 2048]):
            got = {space.article_ids[j] for j in top[row] if j >= 0}
            total += len(got & truth[cust]) / len(truth[cust])
    return total / max(len(ids), 1)


def weekly_sampling_probability(week: np.ndarray, y: np.ndarray, n_articles: int) -> np.ndarray:
    """float32 [n]: for each example, its article's share of the positives of its own week.

    Batches are drawn from one week (same_week_order), so that share is the probability that
    the article shows up as an in-batch negative: the q of the log-q correction.
    e.g. week 1 = [a, a, b], week 2 = [a] -> [2/3, 2/3, 1/3, 1].
    """
    p = np.zeros(len(y), dtype=np.float64)
    for w in np.unique(week):
        members = week == w
        counts = np.bincount(y[members], minlength=n_articles + 1)
        p[members] = counts[y[members]] / members.sum()
    return p.astype(np.float32)


def same_week_order(week: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
    """A shuffled order of examples in which every run of ``batch_size`` comes from one week.

    In-batch negatives are then articles as they were that same week (their dynamic features
    share the positive's date); mixing weeks would let the model tell positives from
    negatives by date alone. Each week's remainder that does not fill a batch is dropped for
    this epoch (a different remainder each epoch).
    """
    rng = np.random.default_rng(seed)
    batches = []
    for w in np.unique(week):
        members = rng.permutation(np.flatnonzero(week == w))
        n_full = len(members) // batch_size
        batches.extend(np.split(members[: n_full * batch_size], n_full) if n_full else [])
    if not batches:  # fewer examples than one batch in every week: one batch of everything
        return rng.permutation(len(week))
    return np.concatenate([batches[i] for i in rng.permutation(len(batches))])


def _plot(history: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax1 = plt.subplots(figsize=(6, 3.5))
    epochs = range(1, len(history["loss"]) + 1)
    ax1.plot(epochs, history["loss"], "o-", color="tab:blue", label="training loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss", color="tab:blue")
    if history.get("val_recall"):
        ax2 = ax1.twinx()
        ax2.plot(epochs, history["val_recall"], "s-", color="tab:orange", label="val recall@k")
        ax2.set_ylabel("validation recall@k", color="tab:orange")
    ax1.set_title("two-tower training")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def data_fingerprint(dataset: Any) -> str:
    """Content fingerprint of the three tables: row counts plus an order-independent sum of row
    hashes (pandas' stable hash), so the same data read from CSV or parquet gives the same value."""
    import hashlib

    h = hashlib.sha256()
    for name, cols in (
        ("articles", ["article_id"]),
        ("customers", ["customer_id"]),
        ("transactions", ["t_dat", "customer_id", "article_id", "price"]),
    ):
        frame = getattr(dataset, name)
        present = [c for c in cols if c in frame]
        total = int(pd.util.hash_pandas_object(frame[present], index=False).sum()) if len(frame) else 0
        h.update(f"{name}:{len(frame)}:{total}".encode())
    return h.hexdigest()[:16]


# Variables whose gradients are sparse rows of a table as large as the customer base.
ID_EMBEDDING_NAMES = ("customer_id_emb", "article_id_emb")


def make_optimizer(model: Any, cfg: TwoTowerTrainConfig) -> Any:
    """Adagrad for the id embedding tables (sparse: only the rows a batch touches are
    updated), Adam for every other weight (see ``TwoTowerTrainConfig.id_learning_rate``)."""
    import tensorflow as tf
    from tensorflow_recommenders.experimental.optimizers import CompositeOptimizer

    def is_id_table(v: Any) -> bool:
        return any(name in v.name for name in ID_EMBEDDING_NAMES)

    return CompositeOptimizer(
        [
            (
                tf.keras.optimizers.Adagrad(learning_rate=cfg.id_learning_rate),
                lambda: [v for v in model.trainable_variables if is_id_table(v)],
            ),
            (
                tf.keras.optimizers.Adam(learning_rate=cfg.learning_rate),
                lambda: [v for v in model.trainable_variables if not is_id_table(v)],
            ),
        ]
    )


@dataclass
class _Prepared:
    """Everything training reads, built once from the rows before the cutoff."""

    space: FeatureSpace
    table: np.ndarray
    x: dict[str, np.ndarray]
    y: np.ndarray
    week: np.ndarray
    sampling_p: np.ndarray
    truth: dict[str, set[str]]  # validation customers' purchases in the week from the cutoff


def _prepare(dataset: Any, cut: pd.Timestamp, validate: bool, cfg: TwoTowerTrainConfig, progress: bool) -> _Prepared:
    t0 = time.perf_counter()
    tx = dataset.transactions
    space = build_feature_space(dataset.articles, dataset.customers, tx, cut, cfg.history_len, cfg.postal_buckets)
    table = article_table(space, dataset.articles)
    x, y = training_examples(space, dataset.customers, tx, cut, cfg.train_weeks)
    week = x.pop("week")
    sampling_p = weekly_sampling_probability(week, y, space.n_articles)
    _log(
        f"{len(y):,} training pairs from {cfg.train_weeks} weeks before {cut.date()}, "
        f"{space.n_customers:,} known customers, {space.n_articles:,} articles "
        f"({time.perf_counter() - t0:.1f}s features)",
        progress,
    )
    truth = purchases_in_week(tx, cut) if validate else {}
    if len(truth) > cfg.val_customers:
        rng = np.random.default_rng(cfg.seed)
        keep = rng.choice(sorted(truth), cfg.val_customers, replace=False)
        truth = {c: truth[c] for c in sorted(keep)}
    return _Prepared(space, table, x, y, week, sampling_p, truth)


def _fit(
    model: Any, prep: _Prepared, dataset: Any, cut: pd.Timestamp, cfg: TwoTowerTrainConfig, progress: bool
) -> tuple[dict[str, list[float]], int, float]:
    """The epoch loop with early stopping on validation recall; the model ends on its best
    epoch's weights. Returns (history, best epoch, best recall or -1 without validation)."""
    import tensorflow as tf

    # The examples become tensors once; each epoch only its order is new and batches gather
    # their rows (a permuted copy of every array per epoch cost ~2 GiB at Kaggle scale).
    data = {
        k_: tf.convert_to_tensor(v)
        for k_, v in {**prep.x, "article_idx": prep.y, "sampling_p": prep.sampling_p}.items()
    }
    prep.x.clear()
    history: dict[str, list[float]] = {"loss": [], "val_recall": [], "epoch_seconds": [], "examples_per_s": []}
    best_recall, best_epoch, best_weights, stale = -1.0, 0, None, 0
    for epoch in range(1, cfg.epochs + 1):
        e0 = time.perf_counter()
        order = same_week_order(prep.week, cfg.batch_size, cfg.seed + epoch)
        ds = (
            tf.data.Dataset.from_tensor_slices(order)
            .batch(cfg.batch_size)
            .map(lambda rows: {k_: tf.gather(v, rows) for k_, v in data.items()})
            .prefetch(2)
        )
        fit = model.fit(ds, epochs=1, verbose=(1 if sys.stdout.isatty() else 2) if progress else 0)
        secs = time.perf_counter() - e0
        history["loss"].append(float(fit.history["loss"][-1]))
        history["epoch_seconds"].append(secs)
        history["examples_per_s"].append(len(order) / secs)
        msg = f"epoch {epoch}/{cfg.epochs}: loss {history['loss'][-1]:.4f}, {len(order) / secs:,.0f} examples/s"
        if prep.truth:
            rec = recall_at_k(model, prep.space, dataset.customers, dataset.transactions, cut, prep.truth, cfg.val_k)
            history["val_recall"].append(rec)
            msg += f", val recall@{cfg.val_k} {rec:.4f}"
            if rec > best_recall:
                best_recall, best_epoch, best_weights, stale = rec, epoch, model.get_weights(), 0
            else:
                stale += 1
        _log(msg, progress)
        if prep.truth and stale >= cfg.patience:
            _log(f"early stopping: no improvement for {cfg.patience} epochs; keeping epoch {best_epoch}", progress)
            break
    if best_weights is not None:
        model.set_weights(best_weights)
    else:
        best_epoch = len(history["loss"])
    data.clear()  # the example tensors (GiBs at Kaggle scale) are not needed for the export
    return history, best_epoch, best_recall


def _export(
    out: Path,
    model: Any,
    prep: _Prepared,
    dataset: Any,
    cut: pd.Timestamp,
    stage_config: StageOneConfig,
    history: dict[str, list[float]],
    for_serving: bool = True,
) -> None:
    """Everything serving and batch inference read, written into the (temporary) model folder.

    ``for_serving=False`` (a ranker training week's model, never published) leaves out what
    only the candidate service reads: the customer snapshot (written empty) and the stage-one
    tables. Batch stage one computes both from the data; at Kaggle scale they took ~1 min."""
    tx, space = dataset.transactions, prep.space
    (out / "weights").mkdir()
    model.save_weights(str(out / "weights" / "ckpt"))
    space.save(out)
    np.save(out / "article_table.npy", prep.table)
    dynamic = article_dynamic_features(space, tx, cut)
    np.save(out / "article_dynamic.npy", dynamic)
    np.save(out / "article_embeddings.npy", model.article_embeddings(dynamic))
    article_stats(space.article_ids, tx, cut).to_parquet(out / "article_stats.parquet", index=False)
    all_ids = np.array(
        sorted(set(dataset.customers["customer_id"].astype(str)) | set(space.customer_ids)) if for_serving else [],
        dtype=object,
    )
    save_customer_snapshot(out, all_ids, query_features(space, dataset.customers, tx, all_ids, cut))
    (out / "popular.json").write_text(json.dumps(popular_articles(tx, dataset.customers, cut)))
    if for_serving:
        build_tables(tx, dataset.customers, dataset.articles, cut, not_sold_weeks=stage_config.not_sold_weeks).save(
            out / TABLES_SUBDIR
        )
    (out / "history.json").write_text(json.dumps(history, indent=2))
    _plot(history, out / "training_curves.png")


def _metadata(
    dataset: Any,
    cut: pd.Timestamp,
    validated: bool,
    last_day: pd.Timestamp,
    cfg: TwoTowerTrainConfig,
    shape: Any,
    space: FeatureSpace,
    metrics: dict[str, Any],
    stage_config: StageOneConfig,
) -> dict[str, Any]:
    """The model's metadata.json: what it is, how and on what it was trained, how it scored."""
    tx = dataset.transactions
    return {
        "model_kind": "two_tower",
        "artifact_format": ARTIFACT_FORMAT,
        "cutoff": cut.date().isoformat() if validated else None,
        "features_as_of": cut.date().isoformat(),
        "config": cfg.to_dict(),
        "model_shape": shape.__dict__,
        "feature_schema": space.schema(),
        "libraries": library_versions("tensorflow", "tf-keras", "tensorflow-recommenders", "numpy", "pandas"),
        "data_fingerprint": data_fingerprint(dataset),
        "data_summary": {
            "transactions": int(len(tx)),
            "first_day": str(tx["t_dat"].min().date()),
            "last_day": str(last_day.date()),
            "articles": space.n_articles,
            "customers": int(len(dataset.customers)),
        },
        "metrics": metrics,
        "score": "cosine similarity of L2-normalised tower outputs, in [-1, 1]",
        "stage_one": stage_config.to_dict(),
    }


def train_two_tower(
    dataset: Any,
    cutoff: date | None,
    models_dir: Path,
    version: str,
    epochs: int | None = None,
    seed: int = 0,
    config: TwoTowerTrainConfig | None = None,
    publish_model: bool = True,
    progress: bool = True,
    stage_config: StageOneConfig | None = None,
    for_serving: bool = True,
) -> Path:
    """Train on purchases strictly before ``cutoff`` (``None``: everything, no validation),
    export to ``models_dir/two_tower/<version>/`` and (optionally) publish it. Returns the folder.

    ``for_serving=False``: a model for batch stage one only (see :func:`_export`); it cannot be
    published, and the candidate service refuses to load it."""
    if publish_model and not for_serving:
        raise ValueError("a two-tower exported without its serving files cannot be published")
    import tensorflow as tf

    from services.candidate.model import ModelShape, TwoTowerModel

    cfg = TwoTowerTrainConfig(**{**(config.to_dict() if config else {}), "seed": seed})
    stage_config = stage_config or StageOneConfig()
    if epochs is not None:
        cfg.epochs = epochs
    tf.keras.utils.set_random_seed(cfg.seed)
    tf.config.experimental.enable_op_determinism()

    tx = dataset.transactions
    if tx.empty:
        raise ValueError("no transactions: nothing to train on")
    last_day = pd.Timestamp(tx["t_dat"].max()).normalize()
    cut = pd.Timestamp(cutoff) if cutoff is not None else last_day + pd.Timedelta(days=1)
    t0 = time.perf_counter()
    prep = _prepare(dataset, cut, cutoff is not None, cfg, progress)
    space = prep.space
    shape = ModelShape(
        n_customers=space.n_customers,
        postal_buckets=space.postal_buckets,
        customer_vocab_sizes=[len(space.customer_vocab[c]) for c in CUSTOMER_CAT_COLUMNS],
        article_vocab_sizes=[len(space.article_vocab[c]) for c in ARTICLE_CAT_COLUMNS],
        history_len=space.history_len,
    )
    model = TwoTowerModel(shape, prep.table, cfg)
    model.compile(optimizer=make_optimizer(model, cfg))
    history, best_epoch, best_recall = _fit(model, prep, dataset, cut, cfg, progress)

    _log(f"exporting (best epoch {best_epoch})", progress)
    metrics = {
        f"val_recall@{cfg.val_k}": best_recall if prep.truth else None,
        "best_epoch": best_epoch,
        "epochs_run": len(history["loss"]),
        "train_pairs": int(len(prep.y)),
        "validation_customers": len(prep.truth),
        "train_examples_per_s": float(np.median(history["examples_per_s"])),
        "train_seconds": time.perf_counter() - t0,
    }
    metadata = _metadata(dataset, cut, cutoff is not None, last_day, cfg, shape, space, metrics, stage_config)
    metadata["serving_files"] = for_serving
    with atomic_model_dir(models_dir, MODEL_NAME, version, metadata) as out:
        _export(out, model, prep, dataset, cut, stage_config, history, for_serving)
    final = Path(models_dir) / MODEL_NAME / version
    if publish_model:
        publish(models_dir, MODEL_NAME, version)
    _log(f"saved {final} ({metrics['train_seconds']:.0f}s){' and published' if publish_model else ''}", progress)
    return final
