"""Training data for the ranker: stage-one candidates of a label week, labelled by that week.

For a training label week starting at ``cutoff`` (the evaluation cutoff shifted one week
back, so the evaluation week stays unseen):

- the candidates come from a two-tower model trained strictly before ``cutoff`` (so the
  score feature is not fitted on the week it labels);
- features come from a :class:`FeatureStore` built from transactions before ``cutoff``;
- a candidate's labels come from the purchases in ``[cutoff, cutoff + 7 days)``.

Only customers who bought something that week are kept: those are the customers the
evaluation scores (MAP@12 is averaged over them), and for them the hard negatives (the
candidates they did not buy) say what to push down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from services.ranker.features import ONLINE_CHANNEL, FeatureStore, ScoreColumns, compute_row_features, customer_groups
from shared.contract.candidate_sources import SOURCE_COLUMNS, source_matrix
from shared.encode import distinct_sorted, positions, vocabulary
from shared.split import label_week, purchases_by_customer


@dataclass
class TrainingData:
    customer_ids: np.ndarray  # [n] str
    article_ids: np.ndarray  # [n] str
    scores: np.ndarray  # [n] two-tower score
    features: np.ndarray  # [n, N_FEATURES]
    labels: dict[str, np.ndarray]  # task -> [n] float32
    truth: dict[str, set[str]]  # every purchase of the week, candidate or not (for MAP)
    # Per row: its list is held out for validation (None: drawn when training, by customer).
    is_validation: np.ndarray | None = None
    negatives_sampled: bool = False  # the training lists' negatives are already down-sampled

    def __len__(self) -> int:
        return len(self.customer_ids)

    def subset(self, index: np.ndarray) -> TrainingData:
        customers = set(self.customer_ids[index])
        return TrainingData(
            self.customer_ids[index],
            self.article_ids[index],
            self.scores[index],
            self.features[index],
            {k: v[index] for k, v in self.labels.items()},
            {c: s for c, s in self.truth.items() if c in customers},
            None if self.is_validation is None else self.is_validation[index],
            self.negatives_sampled,
        )


@dataclass(frozen=True)
class RowSelection:
    """Which labelled candidates a pointwise training reads, chosen before any feature is
    computed: every row of the validation customers (MAP@12 needs whole lists), and of the
    others every purchase and at most ``max_negatives_per_positive`` random non-purchases per
    purchase. At Kaggle scale the week's 11.7M candidate rows became 3.3M (the rest were
    computed and then dropped by the down-sampling); ``max_negatives_per_positive`` None keeps
    every row (the listwise loss needs whole lists)."""

    val_fraction: float
    max_negatives_per_positive: float | None
    seed: int

    def rows(self, customer_ids: pd.Series, purchase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(indices of the rows kept, in order; whether each kept row is a validation row)."""
        is_val = validation_customers(customer_ids, self.val_fraction, self.seed)
        if self.max_negatives_per_positive is None:
            return np.arange(len(purchase)), is_val
        train = np.flatnonzero(~is_val)
        kept = train[downsample_negatives(purchase[train], self.max_negatives_per_positive, self.seed)]
        keep = np.sort(np.concatenate([np.flatnonzero(is_val), kept]))
        return keep, is_val[keep]


def concat_weeks(weeks: dict[str, TrainingData]) -> TrainingData:
    """Several labelled weeks as one; customers are keyed ``<week>|<customer_id>`` so the
    same shopper in two weeks is two ranking lists (and the validation split stays per list)."""
    if len(weeks) == 1:
        return next(iter(weeks.values()))
    parts = list(weeks.items())
    if len({d.negatives_sampled for _, d in parts}) > 1:
        raise ValueError("some weeks' training rows are down-sampled and some are not: build them alike")
    tag = lambda w, ids: np.array([f"{w}|{c}" for c in ids], dtype=object)  # noqa: E731
    return TrainingData(
        customer_ids=np.concatenate([tag(w, d.customer_ids) for w, d in parts]),
        article_ids=np.concatenate([d.article_ids for _, d in parts]),
        scores=np.concatenate([d.scores for _, d in parts]),
        features=np.concatenate([d.features for _, d in parts]),
        labels={k: np.concatenate([d.labels[k] for _, d in parts]) for k in parts[0][1].labels},
        truth={f"{w}|{c}": s for w, d in parts for c, s in d.truth.items()},
        is_validation=(
            None
            if any(d.is_validation is None for _, d in parts)
            else np.concatenate([d.is_validation for _, d in parts])  # type: ignore[misc]
        ),
        negatives_sampled=all(d.negatives_sampled for _, d in parts),
    )


def candidate_labels(candidates: pd.DataFrame, week: pd.DataFrame, mean_price: float) -> dict[str, np.ndarray]:
    """Per candidate row: ``purchase`` (bought that week), ``online`` (bought online that week),
    ``revenue`` (log1p(spent on it that week / shop mean price), 0 if not bought).

    The week's purchases are summed per (customer, article) code pair and looked up by integer
    key: a join on the two string columns of a Kaggle-scale week's 11.7M candidates built GBs
    of hash tables."""
    customers = vocabulary(distinct_sorted(week["customer_id"]))
    articles = vocabulary(distinct_sorted(week["article_id"]))
    n_a = max(len(articles), 1)
    bought_key = positions(week["customer_id"], customers).astype(np.int64) * n_a + positions(
        week["article_id"], articles
    )
    pairs, pair_of_row = np.unique(bought_key, return_inverse=True)
    is_online = (week["sales_channel_id"].to_numpy() == ONLINE_CHANNEL).astype(np.float64)
    online_of_pair = np.zeros(len(pairs))
    np.maximum.at(online_of_pair, pair_of_row, is_online)
    spent_of_pair = np.bincount(pair_of_row, weights=week["price"].to_numpy(dtype=np.float64), minlength=len(pairs))

    cust, art = positions(candidates["customer_id"], customers), positions(candidates["article_id"], articles)
    key = np.where((cust >= 0) & (art >= 0), cust.astype(np.int64) * n_a + art, -1)
    at = np.minimum(np.searchsorted(pairs, key), max(len(pairs) - 1, 0))
    purchase = (key >= 0) & (pairs[at] == key) if len(pairs) else np.zeros(len(key), dtype=bool)
    # Not bought -> 0 for all three tasks: a true zero here, not a missing value.
    online = np.where(purchase, online_of_pair[at] if len(pairs) else 0.0, 0.0)
    spent = np.where(purchase, spent_of_pair[at] if len(pairs) else 0.0, 0.0)
    return {
        "purchase": purchase.astype(np.float32),
        "online": online.astype(np.float32),
        "revenue": np.log1p(spent / mean_price).astype(np.float32),
    }


def build_training_data(
    candidates: pd.DataFrame,
    transactions: pd.DataFrame,
    store: FeatureStore,
    cutoff: date,
    only_buyers: bool = True,
    selection: RowSelection | None = None,
) -> TrainingData:
    """Label ``candidates`` (customer_id, article_id, score) by the week starting at ``cutoff``;
    with a ``selection``, only the rows it keeps get features (and are returned)."""
    if store.cutoff != pd.Timestamp(cutoff).date():
        raise ValueError(f"feature store cutoff {store.cutoff} differs from the label week cutoff {cutoff}")
    week = label_week(transactions, cutoff)
    truth = purchases_by_customer(week)
    cand = candidates[["customer_id", "article_id", "score", *[c for c in SOURCE_COLUMNS if c in candidates]]].copy()
    cand["customer_id"] = cand["customer_id"].astype(str)
    cand["article_id"] = cand["article_id"].astype(str)
    cand = cand.drop_duplicates(["customer_id", "article_id"])
    if only_buyers:
        cand = cand[cand["customer_id"].isin(truth.keys())]
    cand = cand.reset_index(drop=True)
    labels = candidate_labels(cand, week, store.global_mean_price)
    # Rank and gap to the best score within each customer's WHOLE list, as served, before any
    # row is left out of training.
    score = ScoreColumns.of(customer_groups(cand["customer_id"]), cand["score"].to_numpy(dtype=np.float64))
    is_val = None
    if selection is not None:
        rows, is_val = selection.rows(cand["customer_id"], labels["purchase"])
        cand = cand.iloc[rows].reset_index(drop=True)
        labels = {k: v[rows] for k, v in labels.items()}
        score = score.take(rows)
    customers = cand["customer_id"].to_numpy(dtype=object)
    articles = cand["article_id"].to_numpy(dtype=object)
    scores = cand["score"].to_numpy(dtype=np.float64)
    features = compute_row_features(
        store, store.customer_rows(customers), store.article_rows(articles), None, score, source_matrix(cand)
    )
    kept = set(customers)
    return TrainingData(
        customers,
        articles,
        scores,
        features,
        labels,
        {c: s for c, s in truth.items() if c in kept or not only_buyers},
        is_val,
        selection is not None and selection.max_negatives_per_positive is not None,
    )


def validation_customers(customer_ids: np.ndarray | pd.Series, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask: rows whose customer is held out for validation (a stable per-customer draw
    over the distinct ids in sorted order). The ids are hashed, not copied: a <U64 copy of a
    Kaggle-scale week's 11.7M ids and its sort took 6 GB."""
    ids = pd.Series(customer_ids, copy=False)
    unique = np.sort(np.asarray(pd.unique(ids), dtype=object).astype(str))
    rng = np.random.default_rng(seed)
    held = unique[rng.random(len(unique)) < fraction]
    return ids.astype(str).isin(held).to_numpy(dtype=bool)


def downsample_negatives(labels: np.ndarray, max_negatives_per_positive: float, seed: int) -> np.ndarray:
    """Indices keeping every positive and at most ``ratio * n_positives`` random negatives."""
    pos = np.flatnonzero(labels > 0)
    neg = np.flatnonzero(labels <= 0)
    keep_neg = int(min(len(neg), max(1, round(max_negatives_per_positive * max(len(pos), 1)))))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(neg, size=keep_neg, replace=False) if keep_neg < len(neg) else neg
    return np.sort(np.concatenate([pos, chosen]))
