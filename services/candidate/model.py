"""The two-tower retrieval model (TensorFlow Recommenders, Keras 2 API).

- Article tower: article id embedding + one embedding per catalogue attribute
  (features.ARTICLE_CAT_COLUMNS), an MLP, L2-normalised output.
- Query tower: customer id embedding (index 0 = out-of-vocabulary bucket), age band, club
  status, fashion-news frequency, hashed postal code, FN/Active, and the masked mean of the
  article feature embeddings of the customer's recent purchases: a customer the id table
  never saw still gets a personal vector from their history. MLP, L2-normalised output.
- Loss: in-batch softmax over cosine / temperature with the log-q correction of Yi et al.
  (RecSys 2019): logit_j -= log p_j, p_j the article's share of training positives, so
  popular articles are not over-penalised for appearing as negatives more often; in-batch
  duplicates of the positive are masked (``remove_accidental_hits``).
- ID dropout: while training, a share of queries sees the OOV customer id, so the OOV
  bucket learns to rely on features and history (this is what cold-start customers get).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.candidate.features import ARTICLE_DYNAMIC_COLUMNS, CUSTOMER_CAT_COLUMNS
from services.candidate.settings import TwoTowerTrainConfig
from shared.age_bands import N_TOWER_AGE_BUCKETS
from shared.config import configure_tensorflow

configure_tensorflow()  # TensorFlow reads TF_USE_LEGACY_KERAS once, when it is imported

import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402


@dataclass
class ModelShape:
    """Everything needed to rebuild the model before loading its weights."""

    n_customers: int
    postal_buckets: int
    customer_vocab_sizes: list[int]  # per CUSTOMER_CAT_COLUMNS
    article_vocab_sizes: list[int]  # per ARTICLE_CAT_COLUMNS
    history_len: int


class ArticleFeatures(tf.keras.layers.Layer):
    """article index [...] -> concat(id embedding, attribute embeddings) [..., id_dim + C * cat_dim].

    The attribute codes live in a constant table inside the layer, so both towers only
    need article indices (also for the purchase history)."""

    def __init__(self, article_table: np.ndarray, vocab_sizes: list[int], id_dim: int, cat_dim: int, **kw):
        super().__init__(**kw)
        self.table = tf.constant(article_table, dtype=tf.int32)
        self.id_embedding = tf.keras.layers.Embedding(article_table.shape[0], id_dim, name="article_id_emb")
        self.cat_embeddings = [
            tf.keras.layers.Embedding(v + 1, cat_dim, name=f"article_cat{j}_emb") for j, v in enumerate(vocab_sizes)
        ]

    def call(self, idx: tf.Tensor) -> tf.Tensor:
        codes = tf.gather(self.table, idx)
        parts = [self.id_embedding(idx)] + [emb(codes[..., j]) for j, emb in enumerate(self.cat_embeddings)]
        return tf.concat(parts, axis=-1)


def _mlp(hidden: int, out: int, name: str) -> tf.keras.Sequential:
    return tf.keras.Sequential(
        [tf.keras.layers.Dense(hidden, activation="relu"), tf.keras.layers.Dense(out)], name=name
    )


class CandidateTower(tf.keras.Model):
    def __init__(self, article_features: ArticleFeatures, cfg: TwoTowerTrainConfig, **kw):
        super().__init__(**kw)
        self.article_features = article_features
        self.mlp = _mlp(cfg.hidden, cfg.embedding_dim, "candidate_mlp")

    def call(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        """``article_idx`` [B] and ``article_dyn`` [B, 5] (features.article_dynamic_features)."""
        x = tf.concat([self.article_features(inputs["article_idx"]), inputs["article_dyn"]], axis=-1)
        return tf.math.l2_normalize(self.mlp(x), axis=-1)


class QueryTower(tf.keras.Model):
    def __init__(self, shape: ModelShape, article_features: ArticleFeatures, cfg: TwoTowerTrainConfig, **kw):
        super().__init__(**kw)
        self.article_features = article_features
        self.customer_embedding = tf.keras.layers.Embedding(shape.n_customers + 1, cfg.id_dim, name="customer_id_emb")
        self.age_embedding = tf.keras.layers.Embedding(N_TOWER_AGE_BUCKETS, cfg.cat_dim, name="age_emb")
        self.postal_embedding = tf.keras.layers.Embedding(shape.postal_buckets, cfg.cat_dim, name="postal_emb")
        self.cat_embeddings = {
            c: tf.keras.layers.Embedding(v + 1, cfg.cat_dim, name=f"{c}_emb")
            for c, v in zip(CUSTOMER_CAT_COLUMNS, shape.customer_vocab_sizes, strict=True)
        }
        self.mlp = _mlp(cfg.hidden, cfg.embedding_dim, "query_mlp")

    def call(self, f: dict[str, tf.Tensor]) -> tf.Tensor:
        hist = f["history"]
        mask = tf.cast(hist > 0, tf.float32)[..., None]  # [B, L, 1]
        count = tf.reduce_sum(mask, axis=1)  # [B, 1]
        pooled = tf.reduce_sum(self.article_features(hist) * mask, axis=1) / tf.maximum(count, 1.0)
        dense = tf.stack([tf.cast(f["fn"], tf.float32), tf.cast(f["active"], tf.float32)], axis=-1)
        parts = [
            self.customer_embedding(f["customer_idx"]),
            self.age_embedding(f["age_bucket"]),
            self.postal_embedding(f["postal_bucket"]),
            *[self.cat_embeddings[c](f[c]) for c in CUSTOMER_CAT_COLUMNS],
            dense,
            tf.math.log1p(count),
            pooled,
        ]
        return tf.math.l2_normalize(self.mlp(tf.concat(parts, axis=-1)), axis=-1)


class TwoTowerModel(tfrs.Model):
    """Both towers and the retrieval task. Training batches are dicts of the query inputs
    plus ``article_idx`` (the positive) and ``sampling_p`` (its sampling probability)."""

    def __init__(self, shape: ModelShape, article_table: np.ndarray, cfg: TwoTowerTrainConfig):
        super().__init__()
        self.cfg = cfg
        self.shape_ = shape
        shared_features = ArticleFeatures(article_table, shape.article_vocab_sizes, cfg.id_dim, cfg.cat_dim)
        self.query_tower = QueryTower(shape, shared_features, cfg)
        self.candidate_tower = CandidateTower(shared_features, cfg)
        self.task = tfrs.tasks.Retrieval(temperature=cfg.temperature, remove_accidental_hits=True)

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        query_inputs = dict(features)
        if training and self.cfg.id_dropout > 0:
            drop = tf.random.uniform(tf.shape(features["customer_idx"])) < self.cfg.id_dropout
            query_inputs["customer_idx"] = tf.where(
                drop, tf.zeros_like(features["customer_idx"]), features["customer_idx"]
            )
        q = self.query_tower(query_inputs)
        c = self.candidate_tower({"article_idx": features["article_idx"], "article_dyn": features["article_dyn"]})
        return self.task(
            q,
            c,
            candidate_sampling_probability=features["sampling_p"],
            candidate_ids=features["article_idx"],
            compute_metrics=False,
        )

    def build_all(self) -> None:
        """Create every variable by running both towers once (before loading weights)."""
        L = self.shape_.history_len
        dummy = {
            "customer_idx": tf.zeros([1], tf.int32),
            "age_bucket": tf.zeros([1], tf.int32),
            "postal_bucket": tf.zeros([1], tf.int32),
            "fn": tf.zeros([1]),
            "active": tf.zeros([1]),
            "history": tf.zeros([1, L], tf.int32),
            **{c: tf.zeros([1], tf.int32) for c in CUSTOMER_CAT_COLUMNS},
        }
        self.query_tower(dummy)
        self.candidate_tower(
            {"article_idx": tf.zeros([1], tf.int32), "article_dyn": tf.zeros([1, len(ARTICLE_DYNAMIC_COLUMNS)])}
        )

    def article_embeddings(self, dynamic: np.ndarray, batch: int = 8192) -> np.ndarray:
        """float32 [n_articles, dim], row i = article index i + 1 (L2-normalised), with the
        articles' dynamic features ``dynamic`` [n_articles + 1, 5] as of the day of interest."""
        n_articles = dynamic.shape[0] - 1
        out = []
        for start in range(1, n_articles + 1, batch):
            stop = min(start + batch, n_articles + 1)
            idx = tf.range(start, stop, dtype=tf.int32)
            out.append(
                self.candidate_tower({"article_idx": idx, "article_dyn": tf.constant(dynamic[start:stop])}).numpy()
            )
        return np.concatenate(out) if out else np.zeros((0, self.cfg.embedding_dim), np.float32)


class NumpyQueryTower:
    """The query tower's forward pass in numpy, from a trained model's weights.

    Serving encodes one customer per request: a TF call costs milliseconds of framework
    overhead for a few thousand multiply-adds, numpy costs tens of microseconds. The article
    feature embeddings are pre-gathered once ([n_articles + 1, D]); tests check that this
    forward equals the TF one.
    """

    def __init__(self, model: TwoTowerModel):
        qt = model.query_tower
        af = qt.article_features
        table = af.table.numpy()
        self.article_feats = np.concatenate(
            [af.id_embedding.embeddings.numpy()]
            + [emb.embeddings.numpy()[table[:, j]] for j, emb in enumerate(af.cat_embeddings)],
            axis=1,
        ).astype(np.float32)
        self.customer = qt.customer_embedding.embeddings.numpy()
        self.age = qt.age_embedding.embeddings.numpy()
        self.postal = qt.postal_embedding.embeddings.numpy()
        self.cats = {c: qt.cat_embeddings[c].embeddings.numpy() for c in CUSTOMER_CAT_COLUMNS}
        (self.w1, self.b1), (self.w2, self.b2) = ([w.numpy() for w in layer.weights] for layer in qt.mlp.layers)

    def __call__(self, f: dict[str, np.ndarray]) -> np.ndarray:
        hist = np.asarray(f["history"])
        mask = (hist > 0).astype(np.float32)[..., None]
        count = mask.sum(axis=1)
        pooled = (self.article_feats[hist] * mask).sum(axis=1) / np.maximum(count, 1.0)
        x = np.concatenate(
            [
                self.customer[f["customer_idx"]],
                self.age[f["age_bucket"]],
                self.postal[f["postal_bucket"]],
                *[self.cats[c][f[c]] for c in CUSTOMER_CAT_COLUMNS],
                np.stack([np.asarray(f["fn"], np.float32), np.asarray(f["active"], np.float32)], axis=-1),
                np.log1p(count),
                pooled,
            ],
            axis=-1,
        )
        h = np.maximum(x @ self.w1 + self.b1, 0.0)
        out = h @ self.w2 + self.b2
        return (out / np.sqrt(np.maximum((out * out).sum(axis=-1, keepdims=True), 1e-12))).astype(np.float32)
