"""Customer and article features of the two-tower model, shared by training and serving.

Every function that looks at transactions takes an ``as_of`` date and keeps only rows
strictly before it, so features for a week never see that week (tests/candidate prove it
by rewriting the label week and comparing).

Index spaces (0 is always "padding / unknown"):

- articles: the catalogue order, article ``i`` of ``FeatureSpace.article_ids`` is index ``i + 1``;
- customers: those who bought something before the model's cutoff, index ``i + 1``; any other
  customer gets 0, the out-of-vocabulary bucket, and is served from features + history;
- categorical values: vocabulary position + 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from shared.age_bands import N_TOWER_AGE_BUCKETS, TOWER_AGE_EDGES, tower_age_bucket
from shared.encode import IdLookup, day_number, day_numbers, positions, vocabulary
from shared.group_ranks import run_starts
from shared.split import as_timestamp

ARTICLE_CAT_COLUMNS: tuple[str, ...] = (
    # product_code groups the colours of one product: customers buy "the same, in another colour".
    "product_code",
    "product_type_name",
    "product_group_name",
    "colour_group_name",
    "perceived_colour_master_name",
    "department_name",
    "index_name",
    "section_name",
    "garment_group_name",
    "graphical_appearance_name",
)
CUSTOMER_CAT_COLUMNS: tuple[str, ...] = ("club_member_status", "fashion_news_frequency")
# pandas' hash with a fixed key is stable across processes and machines.
_HASH_KEY = "hmrec-postal-key"

QUERY_INPUTS: tuple[str, ...] = (
    "customer_idx",
    "age_bucket",
    "club_member_status",
    "fashion_news_frequency",
    "postal_bucket",
    "fn",
    "active",
    "history",
)


@dataclass
class FeatureSpace:
    """Vocabularies that turn raw ids and strings into the model's integer inputs."""

    article_ids: np.ndarray  # catalogue, str, position i -> index i + 1
    article_vocab: dict[str, list[str]]  # per ARTICLE_CAT_COLUMNS
    customer_ids: np.ndarray  # known customers, str, position i -> index i + 1
    customer_vocab: dict[str, list[str]]  # per CUSTOMER_CAT_COLUMNS
    postal_buckets: int
    history_len: int

    def __post_init__(self) -> None:
        self._article_vocab = vocabulary(self.article_ids)
        self._customer_vocab = vocabulary(self.customer_ids)

    @cached_property
    def article_id_rank(self) -> np.ndarray:
        """int64 [n_articles + 1]: each article index's position in article-id order (a stable
        tie-break for purchases made the same day)."""
        rank = np.zeros(self.n_articles + 1, dtype=np.int64)
        rank[1 + np.argsort(np.asarray(self.article_ids, dtype=object).astype(str), kind="stable")] = np.arange(
            1, self.n_articles + 1
        )
        return rank

    @property
    def n_articles(self) -> int:
        return len(self.article_ids)

    @property
    def n_customers(self) -> int:
        return len(self.customer_ids)

    def article_index(self, ids: Iterable[str]) -> np.ndarray:
        """Article ids -> indices (0 for ids the catalogue does not have)."""
        return positions(ids, self._article_vocab) + 1

    def customer_index(self, ids: Iterable[str]) -> np.ndarray:
        """Customer ids -> indices (0 = out of vocabulary)."""
        return positions(ids, self._customer_vocab) + 1

    def schema(self) -> dict[str, object]:
        """What the towers consume (for metadata.json)."""
        return {
            "query": {
                "customer_idx": f"int32 [B], 0=OOV, {self.n_customers} known customers",
                "age_bucket": f"int32 [B], 0=unknown, edges {list(TOWER_AGE_EDGES)}",
                **{c: f"int32 [B], vocab {len(self.customer_vocab[c])} + unknown" for c in CUSTOMER_CAT_COLUMNS},
                "postal_bucket": f"int32 [B], hashed into {self.postal_buckets}",
                "fn": "float32 [B]",
                "active": "float32 [B]",
                "history": f"int32 [B, {self.history_len}] most recent distinct purchases before the cutoff, 0=pad",
            },
            "candidate": {
                "article_idx": f"int32 [B], {self.n_articles} articles",
                **{c: f"vocab {len(self.article_vocab[c])} + unknown" for c in ARTICLE_CAT_COLUMNS},
            },
        }

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        pd.DataFrame({"article_id": self.article_ids}).to_parquet(folder / "articles_vocab.parquet", index=False)
        pd.DataFrame({"customer_id": self.customer_ids}).to_parquet(folder / "customers_vocab.parquet", index=False)
        (folder / "vocab.json").write_text(
            json.dumps(
                {
                    "article_vocab": self.article_vocab,
                    "customer_vocab": self.customer_vocab,
                    "postal_buckets": self.postal_buckets,
                    "history_len": self.history_len,
                }
            )
        )

    @classmethod
    def load(cls, folder: Path) -> FeatureSpace:
        folder = Path(folder)
        meta = json.loads((folder / "vocab.json").read_text())
        return cls(
            article_ids=pd.read_parquet(folder / "articles_vocab.parquet")["article_id"].astype(str).to_numpy(),
            customer_ids=pd.read_parquet(folder / "customers_vocab.parquet")["customer_id"].astype(str).to_numpy(),
            article_vocab=meta["article_vocab"],
            customer_vocab=meta["customer_vocab"],
            postal_buckets=int(meta["postal_buckets"]),
            history_len=int(meta["history_len"]),
        )


def _vocab(values: pd.Series) -> list[str]:
    """Sorted distinct non-empty strings (sorted so the vocabulary is deterministic)."""
    v = values.astype(str).fillna("")
    return sorted(x for x in v.unique() if x != "")


def _encode(values: pd.Series, vocab: list[str]) -> np.ndarray:
    return (pd.Index(vocab).get_indexer(values.astype(str).fillna("")) + 1).astype(np.int32)


def build_feature_space(
    articles: pd.DataFrame,
    customers: pd.DataFrame,
    transactions: pd.DataFrame,
    cutoff: date | pd.Timestamp,
    history_len: int = 20,
    postal_buckets: int = 2000,
) -> FeatureSpace:
    """Vocabularies from the catalogue, the customer table and purchases strictly before ``cutoff``."""
    before = transactions[transactions["t_dat"] < as_timestamp(cutoff)]
    known = np.sort(before["customer_id"].astype(str).unique())
    return FeatureSpace(
        article_ids=articles["article_id"].astype(str).drop_duplicates().to_numpy(),
        article_vocab={c: _vocab(articles[c]) if c in articles else [] for c in ARTICLE_CAT_COLUMNS},
        customer_ids=known,
        customer_vocab={c: _vocab(customers[c]) if c in customers else [] for c in CUSTOMER_CAT_COLUMNS},
        postal_buckets=postal_buckets,
        history_len=history_len,
    )


def article_table(space: FeatureSpace, articles: pd.DataFrame) -> np.ndarray:
    """int32 [n_articles + 1, len(ARTICLE_CAT_COLUMNS)]: each article's categorical codes (row 0 = padding)."""
    a = articles.drop_duplicates("article_id")
    a = a.set_index(a["article_id"].astype(str)).reindex(space.article_ids)
    table = np.zeros((space.n_articles + 1, len(ARTICLE_CAT_COLUMNS)), dtype=np.int32)
    for j, col in enumerate(ARTICLE_CAT_COLUMNS):
        if col in a:
            table[1:, j] = _encode(a[col].fillna(""), space.article_vocab[col])
    return table


def postal_bucket(postal: pd.Series, buckets: int) -> np.ndarray:
    """Stable hash of the postal code into ``buckets`` (0 reserved for missing)."""
    s = postal.astype(str).fillna("").to_numpy(dtype=object)
    h = pd.util.hash_array(s, hash_key=_HASH_KEY, categorize=False)
    out = (h % np.uint64(buckets - 1)).astype(np.int32) + 1
    return np.where(s == "", 0, out).astype(np.int32)


def customer_static_features(
    space: FeatureSpace, customers: pd.DataFrame, customer_ids: np.ndarray
) -> dict[str, np.ndarray]:
    """Query inputs that do not depend on time, for ``customer_ids`` in order.

    Customers missing from the customer table get the "unknown" value of every feature.
    """
    ids = pd.Index(np.asarray(customer_ids, dtype=object).astype(str))
    c = customers.drop_duplicates("customer_id").set_index(customers["customer_id"].drop_duplicates().astype(str))
    c = c.reindex(ids)
    out = {
        "customer_idx": space.customer_index(ids.to_numpy()),
        "age_bucket": tower_age_bucket(
            c["age"].to_numpy(dtype=np.float64) if "age" in c else np.full(len(ids), np.nan)
        ),
        "postal_bucket": postal_bucket(
            c["postal_code"].fillna("") if "postal_code" in c else pd.Series([""] * len(ids)), space.postal_buckets
        ),
        "fn": np.nan_to_num(c["FN"].to_numpy(dtype=np.float32)) if "FN" in c else np.zeros(len(ids), np.float32),
        "active": np.nan_to_num(c["Active"].to_numpy(dtype=np.float32))
        if "Active" in c
        else np.zeros(len(ids), np.float32),
    }
    for col in CUSTOMER_CAT_COLUMNS:
        out[col] = _encode(c[col].fillna(""), space.customer_vocab[col]) if col in c else np.zeros(len(ids), np.int32)
    return out


def _distinct_pairs(customers: np.ndarray, articles: np.ndarray, n_articles: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (customer, article) index pairs, in order of first appearance."""
    _, first = np.unique(customers.astype(np.int64) * (n_articles + 1) + articles, return_index=True)
    first.sort()
    return customers[first], articles[first]


def recent_distinct(
    rows: np.ndarray, articles: np.ndarray, days: np.ndarray, n_rows: int, history_len: int, tie_rank: np.ndarray
) -> np.ndarray:
    """int32 [n_rows, history_len]: for each row, its most recent distinct articles, newest
    first (ties on a day: lower ``tie_rank[article]`` first), 0-padded.

    ``rows[i]`` (0 <= row < n_rows) bought article index ``articles[i]`` on day ``days[i]``;
    purchases of unknown articles (index 0) are not history. Integer arrays only, so a
    31.8M-row history costs a few int arrays, not copies of the transaction table.
    """
    mat = np.zeros((n_rows, history_len), dtype=np.int32)
    known = articles > 0
    rows, articles, days = rows[known], articles[known], days[known]
    if not len(rows):
        return mat
    order = np.lexsort((tie_rank[articles], -days.astype(np.int64), rows))
    # First occurrence of each (row, article) in that order = its newest purchase.
    r, a = _distinct_pairs(rows[order].astype(np.int64), articles[order], int(articles.max()))
    pos = np.arange(len(r)) - np.searchsorted(r, r, side="left")
    keep = pos < history_len
    mat[r[keep], pos[keep]] = a[keep]
    return mat


def history_matrix(
    space: FeatureSpace, transactions: pd.DataFrame, customer_ids: np.ndarray, as_of: date | pd.Timestamp
) -> np.ndarray:
    """int32 [n, history_len]: each customer's most recent distinct articles bought strictly
    before ``as_of`` (newest first, 0-padded). Rows of ``transactions`` on or after ``as_of``
    are ignored, whatever they contain."""
    # A repeated id gets its history every time (arrow's lookup would match its first copy only).
    ids, again = np.unique(np.asarray(customer_ids, dtype=object).astype(str), return_inverse=True)
    rows = positions(transactions["customer_id"], vocabulary(ids))
    days = day_numbers(transactions["t_dat"])
    keep = np.flatnonzero((rows >= 0) & (days < day_number(as_of)))
    if not len(keep):
        return np.zeros((len(again), space.history_len), dtype=np.int32)
    # Index the whole column and keep the int rows: a row subset of the frame would copy its strings.
    articles = space.article_index(transactions["article_id"])[keep]
    history = recent_distinct(rows[keep], articles, days[keep], len(ids), space.history_len, space.article_id_rank)
    return history[again.ravel()]


def query_features(
    space: FeatureSpace,
    customers: pd.DataFrame,
    transactions: pd.DataFrame,
    customer_ids: np.ndarray,
    as_of: date | pd.Timestamp,
) -> dict[str, np.ndarray]:
    """All query-tower inputs for ``customer_ids`` as of ``as_of`` (history strictly before it)."""
    feats = customer_static_features(space, customers, customer_ids)
    feats["history"] = history_matrix(space, transactions, customer_ids, as_of)
    return feats


class QueryFeatureTable:
    """The query inputs of a batch's customers as of one day, computed once and looked up by id.

    ``hmrec infer`` asks for 1.37M customers in chunks of 2,048; :func:`query_features` per
    chunk hashes the whole 31.8M-row customer and article columns each time (~670 full scans
    at Kaggle scale, most of that stage). Each customer's inputs depend on that customer's own
    rows only, so one call over the whole batch gives each row exactly what a call for that
    customer alone gives (tests/candidate prove it). Ids outside the batch are computed on the spot.
    """

    def __init__(
        self,
        space: FeatureSpace,
        customers: pd.DataFrame,
        transactions: pd.DataFrame,
        as_of: date | pd.Timestamp,
        customer_ids: np.ndarray,
    ) -> None:
        self._args = (space, customers, transactions, as_of)
        self.customer_ids = np.unique(np.asarray(customer_ids, dtype=object).astype(str)).astype(object)
        self.features = query_features(space, customers, transactions, self.customer_ids, as_of)
        self._rows = IdLookup(self.customer_ids)

    def __call__(self, customer_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Query inputs of ``customer_ids`` (any ids), in order: :func:`query_features`'s answer."""
        ids = np.asarray(customer_ids, dtype=object)
        rows = self._rows(ids)
        found = rows >= 0
        out = {k: v[np.maximum(rows, 0)] for k, v in self.features.items()}
        if not found.all():
            space, customers, transactions, as_of = self._args
            extra = query_features(space, customers, transactions, ids[~found], as_of)
            for k, v in extra.items():
                out[k][~found] = v
        return out


def training_examples(
    space: FeatureSpace, customers: pd.DataFrame, transactions: pd.DataFrame, cutoff: date | pd.Timestamp, weeks: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(inputs, positive article index) for the ``weeks`` weeks before ``cutoff``.

    Inputs are the query inputs plus ``article_dyn``, the positive's dynamic features as of
    its week's start (article_dynamic_features).

    Each week ``[s, s + 7d)`` gives one example per distinct (customer, article) bought in it,
    with history as of ``s``: exactly what serving sees for the week after a cutoff. Nothing
    on or after ``cutoff`` is read. ``space`` must know every buyer before ``cutoff``
    (build_feature_space at the same cutoff).

    The transactions are encoded to integer arrays once; each week then works on those
    (at Kaggle scale per-week copies of the 31.8M-row table were what filled the memory).
    """
    cut_day = day_number(cutoff)
    all_days = day_numbers(transactions["t_dat"])
    before = np.flatnonzero(all_days < cut_day)
    days = all_days[before]
    del all_days
    cust = space.customer_index(transactions["customer_id"])[before]
    art = space.article_index(transactions["article_id"])[before]
    # Computed once, not per week: static inputs of every known customer (26 reindexes of the
    # 1.37M-row customer table were a fifth of this function at Kaggle scale), and the rows
    # sorted by day for the weekly article features (two ufunc.at passes over 31.8M rows a week).
    static = customer_static_features(space, customers, space.customer_ids)
    dynamic = DynamicFeatureIndex(space.n_articles, art, days)
    parts: list[dict[str, np.ndarray]] = []
    labels: list[np.ndarray] = []
    for k in range(weeks, 0, -1):
        start = cut_day - 7 * k
        in_week = (days >= start) & (days < start + 7)
        if (cust[in_week] == 0).any():
            raise ValueError(
                "training_examples: a buyer before the cutoff is unknown to the feature space; "
                "build the space at the same cutoff"
            )
        pair_cust, y = _distinct_pairs(cust[in_week], art[in_week], space.n_articles)
        if not len(y):
            continue
        week_custs, row = np.unique(pair_cust, return_inverse=True)
        feats = {k_: v[week_custs - 1] for k_, v in static.items()}
        lookup = np.full(space.n_customers + 1, -1, dtype=np.int64)
        lookup[week_custs] = np.arange(len(week_custs))
        prior = np.flatnonzero(days < start)
        prior = prior[lookup[cust[prior]] >= 0]  # rows before the week, of this week's buyers
        feats["history"] = recent_distinct(
            lookup[cust[prior]], art[prior], days[prior], len(week_custs), space.history_len, space.article_id_rank
        )
        part = {k_: v[row] for k_, v in feats.items()}
        part["article_dyn"] = dynamic.at(start)[y]
        part["week"] = np.full(len(y), k, dtype=np.int32)
        parts.append(part)
        labels.append(y)
    if not parts:
        raise ValueError(f"no purchases in the {weeks} weeks before {as_timestamp(cutoff).date()}: nothing to train on")
    x = {k_: np.concatenate([p[k_] for p in parts]) for k_ in parts[0]}
    y = np.concatenate(labels)
    known = y > 0  # purchases of articles missing from the catalogue cannot be targets
    return {k_: v[known] for k_, v in x.items()}, y[known]


ARTICLE_DYNAMIC_COLUMNS: tuple[str, ...] = (
    "rel_sales_7d",
    "rel_sales_28d",
    "weeks_on_sale",
    "never_sold",
    "weeks_since_last_sale",
)


def article_dynamic_features(space: FeatureSpace, transactions: pd.DataFrame, as_of: date | pd.Timestamp) -> np.ndarray:
    """float32 [n_articles + 1, 5] (row 0 = padding): what changes week to week about an article,
    from sales strictly before ``as_of``.

    - rel_sales_7d / rel_sales_28d: log1p(sales in the window x n_articles / all sales in it),
      i.e. relative popularity, comparable across data sizes (1.0 ~ log1p(1) = an average article);
    - weeks_on_sale: weeks since its first sale, capped at 52, / 52;
    - never_sold: 1.0 for articles with no sale yet (new or dead stock);
    - weeks_since_last_sale: capped at 52, / 52 (1.0 if never sold): tells dead stock from a
      slow seller, which the sales windows alone cannot.
    The synthetic and the real data both have strong launch / fade-out and trends, which a
    static article embedding cannot represent.
    """
    return _dynamic_features(
        space.n_articles,
        space.article_index(transactions["article_id"]),
        day_numbers(transactions["t_dat"]),
        day_number(as_of),
    )


def _dynamic_features(n: int, articles: np.ndarray, days: np.ndarray, end: int) -> np.ndarray:
    """article_dynamic_features on integer arrays (article index, day number) as of day ``end``."""
    before = days < end
    a, d = articles[before], days[before]
    out = np.zeros((n + 1, len(ARTICLE_DYNAMIC_COLUMNS)), dtype=np.float32)
    for j, window in ((0, 7), (1, 28)):
        counts = np.bincount(a[d >= end - window], minlength=n + 1).astype(np.float64)
        counts[0] = 0.0
        out[1:, j] = np.log1p(counts[1:] * n / max(counts.sum(), 1.0))
    never = np.iinfo(np.int32).max
    first = np.full(n + 1, never, dtype=np.int64)
    last = np.full(n + 1, -never, dtype=np.int64)
    np.minimum.at(first, a, d)
    np.maximum.at(last, a, d)
    sold = first != never
    sold[0] = False
    out[1:, 3] = 1.0
    out[1:, 4] = 1.0
    out[sold, 2] = ((end - first[sold]) / 7.0).clip(0, 52) / 52.0
    out[sold, 3] = 0.0
    out[sold, 4] = ((end - last[sold]) / 7.0).clip(0, 52) / 52.0
    return out


class DynamicFeatureIndex:
    """:func:`_dynamic_features` of the same rows at many days, each at the cost of a window
    slice: rows sorted by day once, and each article's distinct sale days sorted once."""

    def __init__(self, n: int, articles: np.ndarray, days: np.ndarray) -> None:
        self.n = n
        if len(days) and not (_DAY_BASE <= int(days.min()) and int(days.max()) < _DAY_BASE + _DAY_SPAN):
            raise ValueError("a transaction date outside 1900-4770 cannot be packed beside its article")
        by_day = np.argsort(days, kind="stable")
        self.days_sorted = days[by_day]
        self.articles_by_day = articles[by_day]
        sale = np.unique(articles.astype(np.int64) * _DAY_SPAN + (days.astype(np.int64) - _DAY_BASE))
        self.sale_keys = sale  # article * _DAY_SPAN + day, sorted
        self.first = np.full(n + 1, np.iinfo(np.int32).max, dtype=np.int64)
        owners = sale // _DAY_SPAN
        starts = run_starts(owners)
        self.first[owners[starts]] = sale[starts] % _DAY_SPAN + _DAY_BASE

    def at(self, end: int) -> np.ndarray:
        """float32 [n + 1, 5]: ``_dynamic_features(n, articles, days, end)``, bit for bit."""
        n = self.n
        if not _DAY_BASE <= end < _DAY_BASE + _DAY_SPAN:
            raise ValueError("a cutoff outside 1900-4770 cannot be packed beside an article")
        out = np.zeros((n + 1, len(ARTICLE_DYNAMIC_COLUMNS)), dtype=np.float32)
        stop = np.searchsorted(self.days_sorted, end)
        for j, window in ((0, 7), (1, 28)):
            start = np.searchsorted(self.days_sorted, end - window)
            counts = np.bincount(self.articles_by_day[start:stop], minlength=n + 1).astype(np.float64)
            counts[0] = 0.0
            out[1:, j] = np.log1p(counts[1:] * n / max(counts.sum(), 1.0))
        article = np.arange(n + 1, dtype=np.int64)
        # The last sale before ``end``: the sale key just below (article, end), if it is that article's.
        below = np.searchsorted(self.sale_keys, article * _DAY_SPAN + (end - _DAY_BASE)) - 1
        found = below >= 0
        key = self.sale_keys[np.maximum(below, 0)]
        found &= key // _DAY_SPAN == article
        sold = found & (self.first < end)
        sold[0] = False
        last = key % _DAY_SPAN + _DAY_BASE
        out[1:, 3] = 1.0
        out[1:, 4] = 1.0
        out[sold, 2] = ((end - self.first[sold]) / 7.0).clip(0, 52) / 52.0
        out[sold, 3] = 0.0
        out[sold, 4] = ((end - last[sold]) / 7.0).clip(0, 52) / 52.0
        return out


# Day numbers packed beside an article index in one int64 (DynamicFeatureIndex): days from
# 1900 on (day -25567) fit 2**20 days (~2,870 years).
_DAY_BASE = -25_567
_DAY_SPAN = 1 << 20


def purchases_in_week(transactions: pd.DataFrame, cutoff: date | pd.Timestamp) -> dict[str, set[str]]:
    """customer -> articles bought in ``[cutoff, cutoff + 7d)`` (validation truth)."""
    start = as_timestamp(cutoff)
    t = transactions[(transactions["t_dat"] >= start) & (transactions["t_dat"] < start + pd.Timedelta(days=7))]
    g = t.groupby(t["customer_id"].astype(str))["article_id"].agg(lambda s: set(s.astype(str)))
    return {str(k): v for k, v in g.items()}


def article_stats(article_ids: np.ndarray, transactions: pd.DataFrame, as_of: date | pd.Timestamp) -> pd.DataFrame:
    """Per catalogue article: last sale day, mean price and number of sales before ``as_of``
    (NaT / NaN / 0 for an article not sold yet; for the filter)."""
    ids = np.asarray(article_ids, dtype=object).astype(str)
    pos = positions(transactions["article_id"], vocabulary(ids))
    days = day_numbers(transactions["t_dat"])
    keep = (pos >= 0) & (days < day_number(as_of))
    pos, days = pos[keep], days[keep]
    sales = np.bincount(pos, minlength=len(ids))
    spent = np.bincount(pos, weights=transactions["price"].to_numpy(dtype=np.float64)[keep], minlength=len(ids))
    last = np.full(len(ids), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, pos, days)
    sold = sales > 0
    last_sold = pd.to_datetime(np.where(sold, last, 0).astype("datetime64[D]")).where(sold)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_price = np.where(sold, spent / np.maximum(sales, 1), np.nan)
    return pd.DataFrame(
        {"article_id": ids, "last_sold": last_sold, "mean_price": mean_price, "sales": sales.astype(np.int64)}
    )


def customer_price_band(
    transactions: pd.DataFrame, customer_ids: np.ndarray, as_of: date | pd.Timestamp
) -> pd.DataFrame:
    """Per customer: p10 and p90 of the prices they paid before ``as_of`` (NaN without history)."""
    t = transactions[transactions["t_dat"] < as_timestamp(as_of)]
    ids = pd.Index(np.asarray(customer_ids, dtype=object).astype(str))
    t = t[t["customer_id"].isin(ids)]
    g = t.groupby(t["customer_id"].astype(str))["price"]
    band = pd.DataFrame({"p_lo": g.quantile(0.1), "p_hi": g.quantile(0.9)})
    return band.reindex(ids)


def popular_articles(
    transactions: pd.DataFrame, customers: pd.DataFrame, as_of: date | pd.Timestamp, days: int = 7, n: int = 1000
) -> dict[str, list[str]]:
    """Most-bought articles in the ``days`` before ``as_of``: key ``"all"`` plus one per age band
    (``"0"`` = unknown age ... ``"11"``), the cold-start fallback."""
    end = as_timestamp(as_of)
    t = transactions[(transactions["t_dat"] < end) & (transactions["t_dat"] >= end - pd.Timedelta(days=days))]
    if t.empty:  # a quiet last week: use all history
        t = transactions[transactions["t_dat"] < end]
    out = {"all": t["article_id"].astype(str).value_counts().index[:n].tolist()}
    bands = pd.Series(
        tower_age_bucket(customers["age"].to_numpy(dtype=np.float64)),
        index=customers["customer_id"].astype(str).to_numpy(),
    )
    tb = bands.reindex(t["customer_id"].astype(str).to_numpy()).fillna(0).astype(int).to_numpy()
    for b in range(N_TOWER_AGE_BUCKETS):
        sub = t["article_id"].astype(str)[tb == b]
        top = sub.value_counts().index[:n].tolist()
        # Thin bands are topped up with the global list so every band has n items.
        seen = set(top)
        out[str(b)] = top + [a for a in out["all"] if a not in seen][: max(0, n - len(top))]
    return out
