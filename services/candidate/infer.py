"""Batch candidate generation: query tower + exact index + candidate filter, in chunks.

Semantics per customer (``select``): among the articles the filter allows, keep those whose
score (cosine, [-1, 1]) is ``>= threshold``, best first, at most ``top_k``. A customer with
more than ``top_k`` passing articles "hits the cap"; one with none "falls back" to the
``min(fallback_k, top_k)`` best allowed articles regardless of the threshold, so nobody is
left empty.
``threshold=None`` is plain top-k.

The filter (settings.FilterConfig; each rule switchable): articles not sold in the last N
weeks before the features date, articles outside the customer's price band, configured
article ids and attribute values.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.candidate.artifact import LoadedTwoTower, load_two_tower
from services.candidate.features import (
    ARTICLE_CAT_COLUMNS,
    article_dynamic_features,
    article_stats,
    customer_price_band,
    query_features,
)
from services.candidate.index import ExactIndex
from services.candidate.settings import NO_FILTERS, FilterConfig

OUTPUT_COLUMNS = ("customer_id", "article_id", "score", "rank")


class CutoffError(ValueError):
    """The model was trained on days the requested features date would predict (leakage)."""


@dataclass
class InferenceStats:
    customers: int = 0
    rows: int = 0
    hit_cap: int = 0
    fell_back: int = 0
    seconds: float = 0.0

    def add(self, other: InferenceStats) -> None:
        self.customers += other.customers
        self.rows += other.rows
        self.hit_cap += other.hit_cap
        self.fell_back += other.fell_back

    def summary(self) -> str:
        rate = self.customers / self.seconds if self.seconds > 0 else float("nan")
        return (
            f"{self.customers:,} customers, {self.rows:,} candidates; {self.hit_cap:,} hit the top-k cap, "
            f"{self.fell_back:,} fell back (nothing passed the threshold); {self.seconds:.1f}s, {rate:,.0f} customers/s"
        )


# --- the filter -------------------------------------------------------------------------------


def allowed_articles(
    model: LoadedTwoTower, stats: pd.DataFrame, filters: FilterConfig, as_of: date | pd.Timestamp
) -> np.ndarray:
    """bool [n_articles] in index order: articles every customer may get (not-sold + exclusions)."""
    n = model.space.n_articles
    allowed = np.ones(n, dtype=bool)
    if filters.not_sold_weeks:
        since = pd.Timestamp(as_of) - pd.Timedelta(weeks=filters.not_sold_weeks)
        last = pd.to_datetime(stats["last_sold"]).to_numpy()
        allowed &= ~pd.isna(last) & (last >= since.to_datetime64())
    if filters.exclude_article_ids:
        pos = model.space.article_index([a.zfill(10) for a in filters.exclude_article_ids]) - 1
        allowed[pos[pos >= 0]] = False
    if filters.exclude_attributes:
        table = model.article_table
        for col, values in filters.exclude_attributes.items():
            if col not in ARTICLE_CAT_COLUMNS:
                raise ValueError(f"cannot exclude by {col!r}: choose one of {', '.join(ARTICLE_CAT_COLUMNS)}")
            j = ARTICLE_CAT_COLUMNS.index(col)
            vocab = model.space.article_vocab[col]
            codes = [vocab.index(v) + 1 for v in values if v in vocab]
            allowed &= ~np.isin(table[1:, j], codes)
    return allowed


def price_mask(mean_price: np.ndarray, band: np.ndarray, slack: float) -> np.ndarray:
    """bool [B, N]: article mean price within ``[p_lo / slack, p_hi * slack]`` of each customer.

    ``band`` is float [B, 2] (p_lo, p_hi); a customer without history (NaN) and an article
    never sold (NaN price) are not filtered.
    """
    lo = band[:, :1] / slack
    hi = band[:, 1:] * slack
    price = mean_price[None, :]
    inside = (price >= lo) & (price <= hi)
    return inside | np.isnan(lo) | np.isnan(price)


# --- selection --------------------------------------------------------------------------------


def select(
    idx: np.ndarray, scores: np.ndarray, top_k: int, threshold: float | None, fallback_k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From a best-first search of ``top_k + 1`` results per row ([B, top_k + 1], -1 = none),
    return (keep mask [B, top_k + 1], hit_cap [B], fell_back [B])."""
    rank = np.arange(idx.shape[1])[None, :]
    valid = idx >= 0
    passing = valid if threshold is None else valid & (scores >= threshold)
    n_pass = passing.sum(axis=1)
    hit_cap = n_pass > top_k
    fell_back = n_pass == 0
    keep = passing & (rank < top_k)
    # The fallback never exceeds the cap either.
    keep = np.where(fell_back[:, None], valid & (rank < min(fallback_k, top_k)), keep)
    return keep, hit_cap, fell_back


def _model(model: LoadedTwoTower | Path | str) -> LoadedTwoTower:
    return model if isinstance(model, LoadedTwoTower) else load_two_tower(Path(model))


def features_date(model: LoadedTwoTower, cutoff: date | None) -> pd.Timestamp:
    """The day features are computed for: ``cutoff``, or the model's own cutoff when ``None``.

    A model trained on days on or after ``cutoff`` would have seen the week it predicts.
    """
    if cutoff is None:
        return pd.Timestamp(model.metadata["features_as_of"])
    if model.cutoff is None or pd.Timestamp(model.cutoff) > pd.Timestamp(cutoff):
        raise CutoffError(
            f"two-tower {model.version} was trained on data up to {model.cutoff or 'the end'} (exclusive), "
            f"after the requested cutoff {cutoff}: its candidates would leak; train one with --cutoff {cutoff}"
        )
    return pd.Timestamp(cutoff)


def iter_candidates(
    model: LoadedTwoTower | Path | str,
    dataset: Any,
    cutoff: date | None = None,
    customer_ids: list[str] | None = None,
    top_k: int = 100,
    threshold: float | None = None,
    filters: FilterConfig | None = None,
    fallback_k: int = 12,
    chunk_size: int = 1024,
    progress: bool = False,
) -> Iterator[tuple[pd.DataFrame, InferenceStats]]:
    """Yield (candidates frame, stats) per chunk of customers; memory is bounded by the chunk."""
    if top_k < 1:
        raise ValueError("top_k must be >= 1")
    if threshold is not None and not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    m = _model(model)
    filters = filters or NO_FILTERS
    as_of = features_date(m, cutoff)
    tx = dataset.transactions
    ids = (
        np.array(sorted(dataset.customers["customer_id"].astype(str)), dtype=object)
        if customer_ids is None
        else np.asarray([str(c) for c in customer_ids], dtype=object)
    )
    feats = query_features(m.space, dataset.customers, tx, ids, as_of)
    stats = article_stats(m.space.article_ids, tx, as_of)
    # Article vectors depend on recent sales (article_dynamic_features): index them as of ``as_of``.
    index = ExactIndex(m.model.article_embeddings(article_dynamic_features(m.space, tx, as_of)))
    allowed = allowed_articles(m, stats, filters, as_of)
    band = customer_price_band(tx, ids, as_of)[["p_lo", "p_hi"]].to_numpy(np.float64) if filters.price_band else None
    mean_price = stats["mean_price"].to_numpy(np.float64)
    k_search = min(top_k + 1, m.space.n_articles)
    bar = _progress(len(ids), progress)
    for s in range(0, len(ids), chunk_size):
        t0 = time.perf_counter()
        chunk = ids[s : s + chunk_size]
        q = m.encode({k: v[s : s + chunk_size] for k, v in feats.items()})
        mask = (
            allowed
            if band is None
            else allowed[None, :] & price_mask(mean_price, band[s : s + chunk_size], filters.price_slack)
        )
        idx, sc = index.search(q, k_search, mask)
        keep, hit_cap, fell_back = select(idx, sc, top_k, threshold, fallback_k)
        rows, cols = np.nonzero(keep)
        # Ranks restart at 1 per customer; nonzero walks rows in order so a cumcount does it.
        rank = (pd.Series(rows).groupby(rows).cumcount() + 1).to_numpy(np.int32)
        frame = pd.DataFrame(
            {
                "customer_id": chunk[rows].astype(str),
                "article_id": m.space.article_ids[idx[rows, cols]].astype(str),
                "score": sc[rows, cols].astype(np.float32),
                "rank": rank,
            }
        )
        st = InferenceStats(
            customers=len(chunk),
            rows=len(frame),
            hit_cap=int(hit_cap.sum()),
            fell_back=int(fell_back.sum()),
            seconds=time.perf_counter() - t0,
        )
        if bar is not None:
            bar.update(len(chunk))
        yield frame, st
    if bar is not None:
        bar.close()


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="customer", desc="candidates", file=sys.stderr)


def generate_candidates(
    model_dir: LoadedTwoTower | Path | str,
    dataset: Any,
    cutoff: date | None,
    customer_ids: list[str] | None = None,
    top_k: int = 100,
    threshold: float | None = None,
    filters: FilterConfig | None = None,
    fallback_k: int = 12,
    chunk_size: int = 1024,
) -> pd.DataFrame:
    """DataFrame(customer_id, article_id, score, rank) for customers as of ``cutoff``."""
    frames = [
        f
        for f, _ in iter_candidates(
            model_dir, dataset, cutoff, customer_ids, top_k, threshold, filters, fallback_k, chunk_size
        )
    ]
    if not frames:
        return pd.DataFrame(
            {c: pd.Series(dtype=t) for c, t in zip(OUTPUT_COLUMNS, ("str", "str", "float32", "int32"), strict=True)}
        )
    return pd.concat(frames, ignore_index=True)
