"""Personalised search: blend query relevance with the customer's affinity for each match.

How (switchable with ``HM_SEARCH_PERSONAL_SOURCE`` = auto | two_tower | text | off, and
``HM_SEARCH_PERSONAL_WEIGHT`` = w in [0, 1], 0 also switches it off):

1. At index time ``customer_history.parquet`` stores each customer's most recent distinct
   purchases (up to 50) from the transactions file.
2. At query time the customer's taste vector is the mean of those articles' vectors, in an
   article space: the two-tower model's article embeddings
   (``output/models/two_tower/<CURRENT>/article_embeddings.npy``, co-purchase structure) when
   present, else the semantic text embeddings of the index (what they bought, described).
   The search service never imports the candidate service: it only reads that file.
3. Over the top ``personal_pool`` matches (after filters), relevance and affinity (cosine of
   taste vector and article vector) are each min-max scaled to [0, 1] and blended:
   ``final = (1 - w) * relevance + w * affinity``. Matches outside the pool are not promoted.
   An unknown customer (or one with no purchase in the catalogue) gets the plain ranking and
   ``personalised: false`` — never an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from services.search.image import l2_normalise

log = logging.getLogger(__name__)

HISTORY_FILE = "customer_history.parquet"
MAX_HISTORY = 50


def build_customer_history(
    transactions: pd.DataFrame, article_ids: pd.Series, max_items: int = MAX_HISTORY
) -> pd.DataFrame:
    """customer_id, article_id: each customer's latest ``max_items`` distinct catalogue purchases."""
    tx = transactions[["customer_id", "article_id", "t_dat"]]
    tx = tx[tx["article_id"].isin(set(article_ids.astype(str)))]
    tx = tx.sort_values("t_dat", ascending=False, kind="stable")
    tx = tx.drop_duplicates(["customer_id", "article_id"])
    tx = tx.groupby("customer_id", sort=False, observed=True).head(max_items)
    return tx[["customer_id", "article_id"]].reset_index(drop=True)


@dataclass
class CustomerHistory:
    """CSR layout: the catalogue rows customer i bought are rows[offsets[i]:offsets[i+1]]."""

    customer_index: pd.Index
    offsets: np.ndarray
    rows: np.ndarray

    @classmethod
    def load(cls, path: Path, row_of: dict[str, int]) -> CustomerHistory | None:
        if not path.exists():
            return None
        frame = pd.read_parquet(path)
        frame["row"] = frame["article_id"].astype(str).map(row_of)
        frame = frame.dropna(subset=["row"])
        customers, codes = np.unique(frame["customer_id"].astype(str).to_numpy(), return_inverse=True)
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=len(customers))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(pd.Index(customers), offsets, frame["row"].to_numpy(dtype=np.int64)[order])

    def rows_of(self, customer_id: str) -> np.ndarray:
        try:
            i = self.customer_index.get_loc(customer_id)
        except KeyError:
            return np.empty(0, dtype=np.int64)
        return self.rows[self.offsets[i] : self.offsets[i + 1]]


def load_two_tower_vectors(models_dir: Path, article_ids: np.ndarray) -> tuple[np.ndarray, str] | None:
    """Two-tower article embeddings aligned to the catalogue rows (zeros where the model has
    no such article), and the model version; None when no two-tower model is published."""
    from shared.artifacts import ArtifactError, resolve_version

    try:
        version = resolve_version(models_dir, "two_tower")
    except (ArtifactError, OSError):
        return None
    folder = Path(models_dir) / "two_tower" / version
    try:
        emb = np.load(folder / "article_embeddings.npy")
        vocab = pd.read_parquet(folder / "articles_vocab.parquet")["article_id"].astype(str).to_numpy()
    except (OSError, KeyError, ValueError) as exc:
        log.warning("two-tower model %s has no usable article embeddings (%s); using text vectors", version, exc)
        return None
    if len(vocab) != len(emb):
        log.warning("two-tower %s: %d vocab ids vs %d embeddings; using text vectors", version, len(vocab), len(emb))
        return None
    position = pd.Series(np.arange(len(vocab)), index=vocab)
    where = position.reindex(article_ids.astype(str)).to_numpy()
    out = np.zeros((len(article_ids), emb.shape[1]), dtype=np.float32)
    known = ~np.isnan(where)
    out[known] = l2_normalise(emb[where[known].astype(np.int64)])
    return out, version


@dataclass
class Personaliser:
    history: CustomerHistory
    article_vectors: np.ndarray  # [n_articles, d], unit rows (zero rows: unknown to the space)
    source: str  # "two_tower:<version>" or "text"
    weight: float
    pool: int

    def taste(self, customer_id: str) -> np.ndarray | None:
        rows = self.history.rows_of(customer_id)
        if len(rows) == 0:
            return None
        v = self.article_vectors[rows].mean(axis=0)
        n = float(np.linalg.norm(v))
        return v / n if n > 1e-9 else None

    def blend(self, customer_id: str, relevance: np.ndarray, allowed: np.ndarray | None) -> np.ndarray | None:
        """Blended scores over the whole catalogue (-inf outside the pool), or None when the
        customer has no usable history."""
        taste = self.taste(customer_id)
        if taste is None:
            return None
        rel = relevance.astype(np.float64).copy()
        if allowed is not None:
            rel[~allowed] = -np.inf
        pool_size = min(self.pool, int(np.isfinite(rel).sum()))
        if pool_size == 0:
            return None
        pool = np.argpartition(-rel, pool_size - 1)[:pool_size]
        affinity = self.article_vectors[pool] @ taste
        out = np.full(len(rel), -np.inf)
        out[pool] = (1 - self.weight) * _minmax(rel[pool]) + self.weight * _minmax(affinity)
        return out


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(x)), float(np.max(x))
    return np.zeros_like(x, dtype=np.float64) if hi - lo < 1e-12 else (x - lo) / (hi - lo)
