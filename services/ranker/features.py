"""Every ranker feature, computed in ONE place for training and for serving.

Two steps, so training and serving cannot drift apart:

1. :func:`build_feature_store` summarises the transactions strictly before ``cutoff`` into
   a :class:`FeatureStore` of per-customer, per-article and per-(customer, article) arrays.
   Training builds one at the training week's cutoff; the exported model carries one
   built at its serving cutoff, saved with :meth:`FeatureStore.save`.
2. :func:`compute_features` turns (customer, article, two-tower score) rows into the
   feature matrix by looking rows up in a store: a hash lookup per customer and article,
   a binary search per (customer, article) pair. The training data builder, the batch
   re-ranker, the evaluation method and the ``/rank`` route all call this function.

Missing values are never a silent ``fillna(0)``. Every default below is chosen so that
it means what a missing value means, and comes with an indicator column:

- unknown age -> the median known age, ``cust_age_missing = 1``;
- no purchase history -> 0 purchases / 0 spend (true zeros), days since last purchase =
  ``DAYS_CAP`` (longer ago than anything we look at), online share = the shop-wide share
  and price level = 1.0 (the shop's average), ``cust_has_history = 0``;
- an article never sold before the cutoff -> 0 sales (true zero), days since first sale = 0
  (it is new), days since last sale = ``DAYS_CAP``, price level 1.0, online share the
  shop-wide one, ``art_never_sold = 1``; an article not in the catalogue at all gets the
  same values and ``art_unknown = 1``;
- a pair never bought -> 0 times, days since bought = ``DAYS_CAP``, recency rank =
  ``RECENCY_CAP``, ``pair_never_bought = 1``;
  price ratio 1.0 with ``pair_price_ratio_missing = 1`` when either price level is a default;
  age-band affinity 1.0 (no lift) when the age is unknown or the article unsold
  (the smoothing prior makes an unsold article's lift exactly 1.0);
- taste shares (the customer's share of purchases in the article's department, colour group
  and graphical appearance) are true zeros without history or for an unknown article, and
  so are the neighbour sales (nobody with that taste bought it, or nobody to compare with);
  ``cust_has_history`` and ``art_unknown`` say which.

The taste features follow how shoppers' tastes are usually described: by department, colour
and print, each largely independent of the others. A customer's *taste vector* is their
purchase counts over those three attribute sets, L2-normalised; an article's *neighbour
sales* over a window is the sum of the taste vectors of everyone who bought it in that window,
dotted with this customer's vector: "how much did people who shop like you buy this lately".
It carries both taste and this week's demand, the two things a purchase next week needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from shared.age_bands import N_DECADE_BANDS, decade_band
from shared.contract.candidate_sources import SOURCE_COLUMNS
from shared.encode import IdLookup, day_number, day_numbers, distinct_sorted, positions, vocabulary
from shared.group_ranks import run_starts

DAYS_CAP = 365.0
# Band edges in years: <25, 25-34, 35-44, 45-54, 55-64, 65+.
# Pseudo-buyers shrinking an article's age-band distribution towards the shop's, so an
# article bought twice by 30-year-olds does not get a huge lift.
AFFINITY_PRIOR = 20.0
DEFAULT_AGE = 35.0
# How many distinct articles the customer bought more recently than this one, capped: shoppers
# re-buy from the few things they bought last, whatever the number of days in between.
RECENCY_CAP = 50.0
ONLINE_CHANNEL = 2
# Article attributes that make up a customer's taste vector (each value one column).
TASTE_ATTRIBUTES = ("department_no", "colour_group_code", "graphical_appearance_no")
NEIGHBOUR_WINDOWS = (7, 28)
TASTE_CHUNK_ROWS = 65_536
# Candidate scores are clipped to +-SCORE_LIMIT: two-tower cosines live in [-1, 1], and a huge
# finite score from a caller (1e300) would overflow the float32 features into inf/NaN.
SCORE_LIMIT = 1e6

CANDIDATE_FEATURES = ["cand_score", "cand_score_gap", "cand_log_rank"]
CUSTOMER_FEATURES = [
    "cust_age",
    "cust_age_missing",
    "cust_has_history",
    "cust_log_purchases",
    "cust_log_purchases_4w",
    "cust_days_since_last",
    "cust_log_spend",
    "cust_online_share",
    "cust_price_level",
]
ARTICLE_FEATURES = [
    "art_log_sales_1w",
    "art_log_sales_2w",
    "art_log_sales_4w",
    "art_log_sales_total",
    "art_trend",
    "art_days_since_first_sale",
    "art_days_since_last_sale",
    "art_price_level",
    "art_online_share",
    "art_never_sold",
    "art_unknown",
]
PAIR_FEATURES = [
    "pair_log_times_bought",
    "pair_never_bought",
    "pair_days_since_bought",
    "pair_recency_rank",
    "pair_same_code_share",
    "pair_same_type_share",
    "pair_price_ratio",
    "pair_price_ratio_missing",
    "pair_age_band_affinity",
    "pair_department_share",
    "pair_colour_share",
    "pair_graphic_share",
    "pair_log_neighbour_sales_1w",
    "pair_log_neighbour_sales_4w",
]
# Which stage-one sources proposed the candidate, and each one's own score (0 = not proposed):
# a repurchase and a two-tower guess with the same cosine are not the same evidence.
SOURCE_FEATURES = [*SOURCE_COLUMNS, "src_count"]
FEATURE_NAMES = CANDIDATE_FEATURES + CUSTOMER_FEATURES + ARTICLE_FEATURES + PAIR_FEATURES + SOURCE_FEATURES
N_FEATURES = len(FEATURE_NAMES)

_C = {n: i for i, n in enumerate(CUSTOMER_FEATURES)}
_A = {n: i for i, n in enumerate(ARTICLE_FEATURES)}


def _lookup_sorted(keys: np.ndarray, values: np.ndarray, query: np.ndarray, default: float) -> np.ndarray:
    """values[i] where keys[i] == query, else ``default`` (keys sorted ascending, unique)."""
    return _lookup_sorted_many(keys, [values], query, [default])[0]


def _lookup_sorted_many(
    keys: np.ndarray, values: list[np.ndarray], query: np.ndarray, defaults: list[float]
) -> list[np.ndarray]:
    """:func:`_lookup_sorted` of several value arrays sharing ``keys``, with one search.

    The search runs in the slice of ``keys`` between the smallest and the largest query: a
    request's or a batch chunk's customers are a few neighbouring rows, so their keys are a few
    thousand of the store's 27.7M, and the binary search stays in cache."""
    outs = [np.full(query.shape, d, dtype=np.float32) for d in defaults]
    valid = query >= 0
    if len(keys) == 0 or not valid.any():
        return outs
    lo, hi = np.searchsorted(keys, [query[valid].min(), query[valid].max()], side="left")
    hi = min(int(hi) + 1, len(keys))
    window = keys[lo:hi]
    if not len(window):
        return outs
    pos = np.minimum(np.searchsorted(window, query), len(window) - 1)
    hit = (window[pos] == query) & valid
    found = pos[hit] + lo
    for out, v in zip(outs, values, strict=True):
        out[hit] = v[found]
    return outs


@dataclass
class FeatureStore:
    """Everything :func:`compute_features` needs, summarised from history before ``cutoff``.

    Row ``len(customer_ids)`` of ``customer_matrix`` holds the unknown-customer defaults and
    row ``len(article_ids)`` of the article arrays the unknown-article defaults, so a lookup
    never fails.
    """

    cutoff: date
    customer_ids: np.ndarray  # [n_c] str
    customer_matrix: np.ndarray  # [n_c + 1, len(CUSTOMER_FEATURES)] float32
    customer_n_purchases: np.ndarray  # [n_c + 1] float32, raw count (for shares)
    customer_band: np.ndarray  # [n_c + 1] int8, -1 unknown
    article_ids: np.ndarray  # [n_a] str
    article_matrix: np.ndarray  # [n_a + 1, len(ARTICLE_FEATURES)] float32
    article_code: np.ndarray  # [n_a + 1] int64, product_code index, -1 unknown
    article_type: np.ndarray  # [n_a + 1] int64, product_type index, -1 unknown
    article_band_lift: np.ndarray  # [n_a + 1, N_DECADE_BANDS] float32
    pair_keys: np.ndarray  # sorted int64: customer_row * n_a + article_row
    pair_count: np.ndarray  # float32
    pair_days: np.ndarray  # float32, days since last bought
    pair_recency: np.ndarray  # float32, distinct articles bought more recently (capped)
    code_keys: np.ndarray  # sorted int64: customer_row * n_codes + code
    code_count: np.ndarray
    type_keys: np.ndarray  # sorted int64: customer_row * n_types + type
    type_count: np.ndarray
    taste_keys: np.ndarray  # sorted int64: customer_row * n_taste + taste column
    taste_count: np.ndarray  # float32 purchases of that attribute value
    taste_norm: np.ndarray  # [n_c + 1] float32, L2 norm of the customer's counts (0: none)
    article_taste: np.ndarray  # [n_a + 1, len(TASTE_ATTRIBUTES)] int64 taste column, -1 unknown
    neighbour_taste: np.ndarray  # [len(NEIGHBOUR_WINDOWS), n_a + 1, n_taste] float32
    n_codes: int
    n_types: int
    global_mean_price: float
    global_online_share: float
    _customer_index: IdLookup = field(init=False, repr=False)
    _article_index: IdLookup = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # IdLookup, not pd.Index: a request's 200 rows through a pandas (arrow string) index
        # cost ~7 % of the ranker's CPU under load (profiled), a dict lookup microseconds.
        self._customer_index = IdLookup(self.customer_ids)
        self._article_index = IdLookup(self.article_ids)

    @property
    def n_customers(self) -> int:
        return len(self.customer_ids)

    @property
    def n_articles(self) -> int:
        return len(self.article_ids)

    def customer_rows(self, customer_ids: np.ndarray | list[str]) -> np.ndarray:
        """Row per id; unknown ids map to the defaults row ``n_customers``."""
        rows = self._customer_index(customer_ids)
        return np.where(rows < 0, self.n_customers, rows).astype(np.int64)

    def article_rows(self, article_ids: np.ndarray | list[str]) -> np.ndarray:
        rows = self._article_index(article_ids)
        return np.where(rows < 0, self.n_articles, rows).astype(np.int64)

    def knows_customer(self, customer_id: str) -> bool:
        return bool(self._customer_index([customer_id])[0] >= 0)

    # --- persistence ------------------------------------------------------------------

    _ARRAYS = (
        "customer_matrix",
        "customer_n_purchases",
        "customer_band",
        "article_matrix",
        "article_code",
        "article_type",
        "article_band_lift",
        "pair_keys",
        "pair_count",
        "pair_days",
        "pair_recency",
        "code_keys",
        "code_count",
        "type_keys",
        "type_count",
        "taste_keys",
        "taste_count",
        "taste_norm",
        "article_taste",
        "neighbour_taste",
    )

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "feature_store.npz", **{k: getattr(self, k) for k in self._ARRAYS})
        pd.DataFrame({"customer_id": pd.Series(self.customer_ids, dtype=str)}).to_parquet(
            directory / "store_customers.parquet", index=False
        )
        pd.DataFrame({"article_id": pd.Series(self.article_ids, dtype=str)}).to_parquet(
            directory / "store_articles.parquet", index=False
        )
        (directory / "feature_store.json").write_text(
            json.dumps(
                {
                    "cutoff": self.cutoff.isoformat(),
                    "n_codes": self.n_codes,
                    "n_types": self.n_types,
                    "global_mean_price": self.global_mean_price,
                    "global_online_share": self.global_online_share,
                    "feature_names": FEATURE_NAMES,
                },
                indent=2,
            )
        )

    @classmethod
    def load(cls, directory: Path) -> FeatureStore:
        directory = Path(directory)
        meta = json.loads((directory / "feature_store.json").read_text())
        if meta["feature_names"] != FEATURE_NAMES:
            raise ValueError(f"feature store at {directory} has a different feature schema than this code")
        with np.load(directory / "feature_store.npz") as npz:
            arrays = {k: npz[k] for k in cls._ARRAYS}
        customers = pd.read_parquet(directory / "store_customers.parquet")["customer_id"].to_numpy(dtype=object)
        articles = pd.read_parquet(directory / "store_articles.parquet")["article_id"].to_numpy(dtype=object)
        return cls(
            cutoff=date.fromisoformat(meta["cutoff"]),
            customer_ids=customers,
            article_ids=articles,
            n_codes=int(meta["n_codes"]),
            n_types=int(meta["n_types"]),
            global_mean_price=float(meta["global_mean_price"]),
            global_online_share=float(meta["global_online_share"]),
            **arrays,
        )


@dataclass
class _RowsBefore:
    """Integer views of the transactions strictly before the cutoff: a row subset of the
    frame (or its id columns as Python / unicode arrays) would copy gigabytes at Kaggle scale."""

    before: np.ndarray  # bool mask over all rows
    prices: np.ndarray  # of the rows before
    online: np.ndarray  # 1.0 where bought online
    days_ago: np.ndarray  # >= 1
    global_mean_price: float
    global_online: float


def _rows_before(transactions: pd.DataFrame, cutoff_ts: pd.Timestamp) -> _RowsBefore:
    days = day_numbers(transactions["t_dat"])
    cutoff_day = day_number(cutoff_ts)
    before = days < cutoff_day
    prices = transactions["price"].to_numpy(dtype=np.float64)[before]
    online = (transactions["sales_channel_id"].to_numpy()[before] == ONLINE_CHANNEL).astype(np.float64)
    return _RowsBefore(
        before=before,
        prices=prices,
        online=online,
        days_ago=(cutoff_day - days[before]).astype(np.float64),
        global_mean_price=float(prices.mean()) if len(prices) else 1.0,
        global_online=float(online.mean()) if len(online) else 0.5,
    )


def _customer_block(
    transactions: pd.DataFrame,
    customers: pd.DataFrame,
    rows: _RowsBefore,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(customer ids, each row's customer index, customer matrix, purchases, decade band)."""
    cust_ids = np.union1d(
        customers["customer_id"].to_numpy(dtype=object).astype(str),
        distinct_sorted(transactions["customer_id"], rows.before),
    ).astype(object)
    n_c = len(cust_ids)
    hc = positions(transactions["customer_id"], vocabulary(cust_ids))[rows.before].astype(np.int64)
    n_buy = np.bincount(hc, minlength=n_c).astype(np.float64)
    n_buy_4w = np.bincount(hc[rows.days_ago <= 28], minlength=n_c).astype(np.float64)
    spend = np.bincount(hc, weights=rows.prices, minlength=n_c)
    online_buys = np.bincount(hc, weights=rows.online, minlength=n_c)
    last_days = np.full(n_c, DAYS_CAP)
    if len(hc):
        np.minimum.at(last_days, hc, rows.days_ago)
    ages = (
        customers.drop_duplicates("customer_id")
        .set_index("customer_id")["age"]
        .reindex(cust_ids)
        .to_numpy(dtype=np.float64)
    )
    known_ages = ages[~np.isnan(ages)]
    median_age = float(np.median(known_ages)) if len(known_ages) else DEFAULT_AGE
    has_hist = n_buy > 0
    safe_n = np.maximum(n_buy, 1.0)
    cust = np.zeros((n_c + 1, len(CUSTOMER_FEATURES)), dtype=np.float32)
    cust[:n_c, _C["cust_age"]] = np.where(np.isnan(ages), median_age, ages)
    cust[:n_c, _C["cust_age_missing"]] = np.isnan(ages)
    cust[:n_c, _C["cust_has_history"]] = has_hist
    cust[:n_c, _C["cust_log_purchases"]] = np.log1p(n_buy)
    cust[:n_c, _C["cust_log_purchases_4w"]] = np.log1p(n_buy_4w)
    cust[:n_c, _C["cust_days_since_last"]] = last_days
    cust[:n_c, _C["cust_log_spend"]] = np.log1p(spend / rows.global_mean_price)
    cust[:n_c, _C["cust_online_share"]] = np.where(has_hist, online_buys / safe_n, rows.global_online)
    cust[:n_c, _C["cust_price_level"]] = np.where(has_hist, spend / safe_n / rows.global_mean_price, 1.0)
    # Unknown customer: median age (flagged missing), no history.
    cust[n_c] = 0.0
    cust[n_c, _C["cust_age"]] = median_age
    cust[n_c, _C["cust_age_missing"]] = 1.0
    cust[n_c, _C["cust_days_since_last"]] = DAYS_CAP
    cust[n_c, _C["cust_online_share"]] = rows.global_online
    cust[n_c, _C["cust_price_level"]] = 1.0
    cust_band = np.append(decade_band(ages), np.int8(-1)).astype(np.int8)
    return cust_ids, hc, cust, n_buy, cust_band


def _article_block(
    transactions: pd.DataFrame,
    cat: pd.DataFrame,
    rows: _RowsBefore,
) -> tuple[np.ndarray, pd.Index, np.ndarray, np.ndarray]:
    """(article ids, their index, each row's article index, article matrix)."""
    art_ids = np.union1d(
        cat["article_id"].to_numpy(dtype=object).astype(str), distinct_sorted(transactions["article_id"], rows.before)
    ).astype(object)
    n_a = len(art_ids)
    aidx = pd.Index(art_ids)
    ha = positions(transactions["article_id"], vocabulary(art_ids))[rows.before].astype(np.int64)
    days_ago = rows.days_ago
    sales = {w: np.bincount(ha[days_ago <= w], minlength=n_a).astype(np.float64) for w in (7, 14, 28)}
    sales_total = np.bincount(ha, minlength=n_a).astype(np.float64)
    art_spend = np.bincount(ha, weights=rows.prices, minlength=n_a)
    art_online = np.bincount(ha, weights=rows.online, minlength=n_a)
    first_days = np.zeros(n_a)
    last_sale = np.full(n_a, DAYS_CAP)
    if len(ha):
        np.maximum.at(first_days, ha, days_ago)
        np.minimum.at(last_sale, ha, days_ago)
    sold = sales_total > 0
    safe_sales = np.maximum(sales_total, 1.0)
    art = np.zeros((n_a + 1, len(ARTICLE_FEATURES)), dtype=np.float32)
    art[:n_a, _A["art_log_sales_1w"]] = np.log1p(sales[7])
    art[:n_a, _A["art_log_sales_2w"]] = np.log1p(sales[14])
    art[:n_a, _A["art_log_sales_4w"]] = np.log1p(sales[28])
    art[:n_a, _A["art_log_sales_total"]] = np.log1p(sales_total)
    # Last week against the 4-week weekly average; +1 keeps unsold articles at a neutral 1.0.
    art[:n_a, _A["art_trend"]] = (sales[7] + 1.0) / (sales[28] / 4.0 + 1.0)
    art[:n_a, _A["art_days_since_first_sale"]] = first_days
    art[:n_a, _A["art_days_since_last_sale"]] = last_sale
    art[:n_a, _A["art_price_level"]] = np.where(sold, art_spend / safe_sales / rows.global_mean_price, 1.0)
    art[:n_a, _A["art_online_share"]] = np.where(sold, art_online / safe_sales, rows.global_online)
    art[:n_a, _A["art_never_sold"]] = ~sold
    art[:n_a, _A["art_unknown"]] = ~np.asarray(aidx.isin(cat["article_id"].astype(str)))
    art[n_a] = 0.0
    art[n_a, _A["art_trend"]] = 1.0
    art[n_a, _A["art_days_since_last_sale"]] = DAYS_CAP
    art[n_a, _A["art_price_level"]] = 1.0
    art[n_a, _A["art_online_share"]] = rows.global_online
    art[n_a, _A["art_never_sold"]] = 1.0
    art[n_a, _A["art_unknown"]] = 1.0
    return art_ids, aidx, ha, art


def _article_groups(cat: pd.DataFrame, aidx: pd.Index) -> tuple[np.ndarray, np.ndarray, int, int, np.ndarray, int]:
    """(product code per article, product type per article, n codes, n types, taste columns, n taste)."""
    n_a = len(aidx)
    cat_by_id = cat.set_index(cat["article_id"].astype(str))
    code_codes, code_uniques = pd.factorize(cat_by_id["product_code"].astype(str))
    type_codes, type_uniques = pd.factorize(
        cat_by_id["product_type_name"].astype(str)
        if "product_type_name" in cat_by_id
        else cat_by_id["product_type_no"].astype(str)
    )
    art_code = np.full(n_a + 1, -1, dtype=np.int64)
    art_type = np.full(n_a + 1, -1, dtype=np.int64)
    rows_in_cat = aidx.get_indexer(cat_by_id.index.to_numpy(dtype=object))
    art_code[rows_in_cat] = code_codes
    art_type[rows_in_cat] = type_codes
    article_taste, n_taste = _taste_columns(cat_by_id, rows_in_cat, n_a)
    return art_code, art_type, max(len(code_uniques), 1), max(len(type_uniques), 1), article_taste, n_taste


def _band_lift(cust_band: np.ndarray, hc: np.ndarray, ha: np.ndarray, n_a: int) -> np.ndarray:
    """Lift of each article's buyer age mix over the shop's (smoothed towards the shop's)."""
    row_band = cust_band[hc]
    known = row_band >= 0
    band_counts = np.zeros((n_a + 1, N_DECADE_BANDS))
    np.add.at(band_counts, (ha[known], row_band[known].astype(np.int64)), 1.0)
    shop = band_counts.sum(axis=0)
    p_band = shop / shop.sum() if shop.sum() > 0 else np.full(N_DECADE_BANDS, 1.0 / N_DECADE_BANDS)
    smoothed = (band_counts + AFFINITY_PRIOR * p_band) / (band_counts.sum(axis=1, keepdims=True) + AFFINITY_PRIOR)
    return np.divide(smoothed, p_band, out=np.ones_like(smoothed), where=p_band > 0)


def build_feature_store(
    transactions: pd.DataFrame,
    customers: pd.DataFrame,
    articles: pd.DataFrame,
    cutoff: date,
) -> FeatureStore:
    """Summarise every transaction strictly before ``cutoff`` (nothing on or after it is read)."""
    cutoff_ts = pd.Timestamp(cutoff).normalize()
    rows = _rows_before(transactions, cutoff_ts)
    cust_ids, hc, cust, n_buy, cust_band = _customer_block(transactions, customers, rows)
    cat = articles.drop_duplicates("article_id")
    art_ids, aidx, ha, art = _article_block(transactions, cat, rows)
    n_c, n_a = len(cust_ids), len(art_ids)
    art_code, art_type, n_codes, n_types, article_taste, n_taste = _article_groups(cat, aidx)

    pair_keys, pair_count, pair_days, recency = _pair_summary(hc * n_a + ha, rows.days_ago, n_a)
    code_keys, code_count = _count_keys(hc, art_code[ha], n_codes)
    type_keys, type_count = _count_keys(hc, art_type[ha], n_types)
    lift = _band_lift(cust_band, hc, ha, n_a)
    taste_keys, taste_count, taste_norm, neighbour = _taste_summary(
        hc, ha, rows.days_ago, article_taste, n_c, n_a, n_taste
    )

    return FeatureStore(
        cutoff=cutoff_ts.date(),
        customer_ids=cust_ids,
        customer_matrix=cust,
        customer_n_purchases=np.append(n_buy, 0.0).astype(np.float32),
        customer_band=cust_band,
        article_ids=art_ids,
        article_matrix=art,
        article_code=art_code,
        article_type=art_type,
        article_band_lift=lift.astype(np.float32),
        pair_keys=pair_keys,
        pair_count=pair_count.astype(np.float32),
        pair_days=np.minimum(pair_days, DAYS_CAP).astype(np.float32),
        pair_recency=np.minimum(recency, RECENCY_CAP).astype(np.float32),
        code_keys=code_keys,
        code_count=code_count,
        type_keys=type_keys,
        type_count=type_count,
        taste_keys=taste_keys,
        taste_count=taste_count,
        taste_norm=taste_norm,
        article_taste=article_taste,
        neighbour_taste=neighbour,
        n_codes=n_codes,
        n_types=n_types,
        global_mean_price=rows.global_mean_price,
        global_online_share=rows.global_online,
    )


def _pair_summary(
    keys: np.ndarray, days_ago: np.ndarray, n_a: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct (customer, article) key (``customer_row * n_a + article_row``), sorted:
    times bought, days since the last time, and its recency rank among the customer's
    articles (0 = the most recently bought; articles last bought the same day share a rank).

    Sorting int arrays, not a pandas group-by: at Kaggle scale (31.8M rows, 27.7M pairs) the
    group-by's hash tables were the feature store's memory peak.
    """
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    sorted_days = days_ago[order]
    del order
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) if len(keys) else np.zeros(0, np.int64)
    pair_keys = sorted_keys[starts]
    count = np.diff(np.r_[starts, len(sorted_keys)])
    last = np.minimum.reduceat(sorted_days, starts) if len(starts) else np.zeros(0)
    del sorted_keys, sorted_days
    customer = pair_keys // max(n_a, 1)
    by_recency = np.lexsort((last, customer))  # customer, then most recent first
    recency = np.empty(len(by_recency), dtype=np.float64)
    recency[by_recency] = _rank_in_sorted_groups(customer[by_recency], last[by_recency])
    return pair_keys, count, last, recency


def _rank_in_sorted_groups(groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """0-based rank of each row within its group, for rows sorted by (group, value); equal
    values share the rank of the first of them (the number of rows ranked strictly before)."""
    position = np.arange(len(groups))
    # np.concatenate, not np.r_ (which parses its arguments in Python): this runs per request
    new_group = np.concatenate(([True], groups[1:] != groups[:-1]))
    new_value = new_group | np.concatenate(([True], values[1:] != values[:-1]))
    first_of_group = np.maximum.accumulate(np.where(new_group, position, 0))
    first_of_tie = np.maximum.accumulate(np.where(new_value, position, 0))
    return first_of_tie - first_of_group


def _taste_columns(cat_by_id: pd.DataFrame, rows_in_cat: np.ndarray, n_a: int) -> tuple[np.ndarray, int]:
    """Per article row, its column in the taste space for each of ``TASTE_ATTRIBUTES`` (-1 if
    unknown or the catalogue lacks the attribute); and the width of that space."""
    columns = np.full((n_a + 1, len(TASTE_ATTRIBUTES)), -1, dtype=np.int64)
    offset = 0
    for j, name in enumerate(TASTE_ATTRIBUTES):
        if name not in cat_by_id:
            continue
        codes, uniques = pd.factorize(cat_by_id[name].astype(str))
        columns[rows_in_cat, j] = np.where(codes >= 0, codes + offset, -1)
        offset += len(uniques)
    return columns, max(offset, 1)


def _taste_summary(
    hc: np.ndarray, ha: np.ndarray, days_ago: np.ndarray, article_taste: np.ndarray, n_c: int, n_a: int, n_taste: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Customers' taste counts (sorted keys), their L2 norms, and per window the summed
    normalised taste vectors of each article's buyers in that window."""
    import scipy.sparse as sp

    # One attribute at a time (their columns never collide): counting all three in one pass
    # held 3 x 31.8M keys at once, the store's memory peak at Kaggle scale.
    parts = [_count_keys(hc, article_taste[ha, j], n_taste) for j in range(article_taste.shape[1])]
    keys = np.concatenate([k for k, _ in parts])
    order = np.argsort(keys, kind="stable")
    keys, count = keys[order], np.concatenate([c for _, c in parts])[order]
    cust_row, taste_col = keys // n_taste, keys % n_taste
    norm = np.sqrt(np.bincount(cust_row, weights=count.astype(np.float64) ** 2, minlength=n_c + 1)).astype(np.float32)
    unit = sp.csr_matrix((count / norm[cust_row], (cust_row, taste_col)), shape=(n_c + 1, n_taste))
    neighbour = np.zeros((len(NEIGHBOUR_WINDOWS), n_a + 1, n_taste), dtype=np.float32)
    for w, days in enumerate(NEIGHBOUR_WINDOWS):
        recent = days_ago <= days
        # One row per (article, buyer) pair, however many units: a buyer counts once.
        bought = sp.csr_matrix(
            (np.ones(int(recent.sum()), dtype=np.float32), (ha[recent], hc[recent])), shape=(n_a + 1, n_c + 1)
        )
        bought.sum_duplicates()
        bought.data[:] = 1.0
        neighbour[w] = (bought @ unit).toarray()
    return keys, count, norm, neighbour


def taste_features(store: FeatureStore, c: np.ndarray, a: np.ndarray, n_buy: np.ndarray) -> list[np.ndarray]:
    """Department/colour/graphic shares (of ``n_buy`` purchases) and neighbour sales per window
    for rows (c, a)."""
    n_taste = store.neighbour_taste.shape[2]
    out: list[np.ndarray] = []
    for j in range(store.article_taste.shape[1]):
        col = store.article_taste[a, j]
        key = np.where((col >= 0) & (c < store.n_customers), c * n_taste + col, -1)
        out.append(_lookup_sorted(store.taste_keys, store.taste_count, key, 0.0) / n_buy)
    if len(c) and (c == c[0]).all():
        # One customer (a /rank request): the same entries for every row, summed in the same order.
        out.extend(np.log1p(np.maximum(dot, 0.0)) for dot in _neighbour_dots_one(store, int(c[0]), a))
        return out
    dots = np.zeros((len(NEIGHBOUR_WINDOWS), len(c)))
    # Rows in chunks: each row expands to its customer's non-zero taste entries (up to a few
    # hundred), and 5.9M training rows expanded at once took 12 GiB at Kaggle scale.
    for s in range(0, len(c), TASTE_CHUNK_ROWS):
        dots[:, s : s + TASTE_CHUNK_ROWS] = _neighbour_dots(
            store, c[s : s + TASTE_CHUNK_ROWS], a[s : s + TASTE_CHUNK_ROWS]
        )
    out.extend(np.log1p(np.maximum(dot, 0.0)) for dot in dots)
    return out


def _neighbour_dots(store: FeatureStore, c: np.ndarray, a: np.ndarray) -> np.ndarray:
    """[len(NEIGHBOUR_WINDOWS), n] v_c . S_a per window over the customer's non-zero taste
    entries: each row is expanded to its customer's entries, then summed back."""
    n_taste = store.neighbour_taste.shape[2]
    lo = np.searchsorted(store.taste_keys, c * n_taste)
    hi = np.searchsorted(store.taste_keys, (c + 1) * n_taste)
    sizes = hi - lo
    row = np.repeat(np.arange(len(c)), sizes)
    entry = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes) + np.repeat(lo, sizes)
    taste_col = store.taste_keys[entry] % n_taste
    weight = store.taste_count[entry] / np.maximum(store.taste_norm[c][row], 1e-12)
    return np.stack(
        [
            np.bincount(row, weights=weight * store.neighbour_taste[w, a[row], taste_col], minlength=len(c))
            for w in range(len(NEIGHBOUR_WINDOWS))
        ]
    )


def _neighbour_dots_one(store: FeatureStore, c: int, a: np.ndarray) -> np.ndarray:
    """:func:`_neighbour_dots` for rows of one customer, bit for bit: the customer's entries
    are gathered once as a [windows, entries, rows] block of the same float32 products and
    summed down the entries in their order (a reduction over a C-contiguous array's outer axis
    adds row after row, sequentially, as ``bincount`` accumulates), instead of expanding every
    row to the same entries. A request's 200 rows: ~5x less CPU."""
    n_taste = store.neighbour_taste.shape[2]
    lo = int(np.searchsorted(store.taste_keys, c * n_taste))
    hi = int(np.searchsorted(store.taste_keys, (c + 1) * n_taste))
    if hi == lo:
        return np.zeros((len(NEIGHBOUR_WINDOWS), len(a)))
    taste_col = store.taste_keys[lo:hi] % n_taste
    weight = store.taste_count[lo:hi] / np.maximum(store.taste_norm[c], 1e-12)
    block = store.neighbour_taste[:, a][:, :, taste_col]  # [windows, rows, entries]: rows first, then columns
    terms = (block * weight).transpose(0, 2, 1).astype(np.float64, order="C")
    return terms.sum(axis=1)


def _count_keys(customer_rows: np.ndarray, group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    ok = group >= 0
    keys = customer_rows[ok].astype(np.int64) * n_groups + group[ok]
    uniq, counts = np.unique(keys, return_counts=True)
    return uniq.astype(np.int64), counts.astype(np.float32)


def candidate_ranks(customer_ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(0-based rank of each row's score within its customer's list, best score of that list).

    Tied scores share the best rank of the tie (the number of strictly better scores), so the
    features do not depend on the order the candidates arrive in.
    """
    return group_ranks(customer_groups(np.asarray(customer_ids, dtype=object)), scores)


def group_ranks(groups: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`candidate_ranks` with each row's customer given as an int (``groups``)."""
    order = np.lexsort((-scores, groups))
    sorted_groups = groups[order]
    sorted_scores = scores[order]
    starts = run_starts(sorted_groups)
    sizes = np.diff(np.append(starts, len(order)))
    ranks = np.empty(len(order), dtype=np.float64)
    ranks[order] = _rank_in_sorted_groups(sorted_groups, sorted_scores)
    best = np.empty(len(order), dtype=np.float64)
    best[order] = np.repeat(sorted_scores[starts], sizes)
    return ranks, best


def _pair_columns(
    store: FeatureStore, c: np.ndarray, a: np.ndarray, cust: np.ndarray, art: np.ndarray
) -> list[np.ndarray]:
    """The customer x article columns: own purchases of the article, of its product code and
    type, price against the customer's level, age-band affinity and taste (PAIR_FEATURES order)."""
    known_pair = (c < store.n_customers) & (a < store.n_articles)
    pair_key = np.where(known_pair, c * store.n_articles + a, -1)
    times, days, recency = _lookup_sorted_many(
        store.pair_keys,
        [store.pair_count, store.pair_days, store.pair_recency],
        pair_key,
        [0.0, DAYS_CAP, RECENCY_CAP],
    )
    n_buy = np.maximum(store.customer_n_purchases[c], 1.0)
    code = store.article_code[a]
    typ = store.article_type[a]
    code_key = np.where(code >= 0, c * store.n_codes + code, -1)
    type_key = np.where(typ >= 0, c * store.n_types + typ, -1)
    same_code = _lookup_sorted(store.code_keys, store.code_count, code_key, 0.0) / n_buy
    same_type = _lookup_sorted(store.type_keys, store.type_count, type_key, 0.0) / n_buy
    cust_price = cust[:, _C["cust_price_level"]]
    art_price = art[:, _A["art_price_level"]]
    price_missing = (cust[:, _C["cust_has_history"]] == 0) | (art[:, _A["art_never_sold"]] == 1)
    price_ratio = np.where(price_missing, 1.0, art_price / np.maximum(cust_price, 1e-6))
    band = store.customer_band[c].astype(np.int64)
    affinity = np.where(band >= 0, store.article_band_lift[a, np.maximum(band, 0)], 1.0)
    return [
        np.log1p(times),
        times == 0,
        days,
        recency,
        same_code,
        same_type,
        price_ratio,
        price_missing,
        affinity,
        *taste_features(store, c, a, n_buy),
    ]


def compute_features(
    store: FeatureStore,
    customer_ids: np.ndarray | list[str],
    article_ids: np.ndarray | list[str],
    scores: np.ndarray | list[float],
    sources: np.ndarray | None = None,
) -> np.ndarray:
    """Feature matrix ``[n_rows, N_FEATURES]`` (float32, columns in ``FEATURE_NAMES`` order).

    Row i describes candidate ``article_ids[i]`` for ``customer_ids[i]`` with two-tower score
    ``scores[i]`` and stage-one source scores ``sources[i]`` (``[n, len(SOURCE_COLUMNS)]``,
    shared.contract.candidate_sources; None = no source known, all 0); candidate rank features are computed
    within each customer's rows.
    Non-finite scores are treated as the worst score in that customer's list; scores are
    clipped to +-``SCORE_LIMIT``.
    """
    customer_ids = np.asarray(customer_ids, dtype=object)
    article_ids = np.asarray(article_ids, dtype=object)
    n = len(customer_ids)
    if not (len(article_ids) == len(np.asarray(scores)) == n):
        raise ValueError("customer_ids, article_ids and scores must have the same length")
    if n == 0:
        return np.empty((0, N_FEATURES), dtype=np.float32)
    return compute_row_features(
        store,
        store.customer_rows(customer_ids),
        store.article_rows(article_ids),
        customer_groups(customer_ids),
        scores,
        sources,
    )


@dataclass
class ScoreColumns:
    """The candidate-score features of rows: the clipped score, its rank in its customer's
    list and that list's best score. They depend on the whole list, so a caller that keeps some
    rows only (the ranker's down-sampled training lists) computes them first, over every row."""

    clipped: np.ndarray
    ranks: np.ndarray
    best: np.ndarray

    @classmethod
    def of(cls, groups: np.ndarray, scores: np.ndarray | list[float]) -> ScoreColumns:
        """Non-finite scores count as the worst finite score; scores are clipped to +-SCORE_LIMIT."""
        scores = np.asarray(scores, dtype=np.float64)
        if not np.isfinite(scores).all():
            finite = scores[np.isfinite(scores)]
            scores = np.where(np.isfinite(scores), scores, finite.min() if len(finite) else 0.0)
        clipped: np.ndarray = np.clip(scores, -SCORE_LIMIT, SCORE_LIMIT)
        ranks, best = group_ranks(groups, clipped)
        return cls(clipped, ranks, best)

    def take(self, rows: np.ndarray) -> ScoreColumns:
        return ScoreColumns(self.clipped[rows], self.ranks[rows], self.best[rows])


def customer_groups(customer_ids: np.ndarray | pd.Series) -> np.ndarray:
    """An int per row naming its customer (equal ids, equal ints)."""
    first = customer_ids.iloc[0] if isinstance(customer_ids, pd.Series) and len(customer_ids) else None
    if first is None and len(customer_ids):
        first = customer_ids[0]
    if len(customer_ids) and bool((customer_ids == first).all()):
        return np.zeros(len(customer_ids), dtype=np.intp)  # one customer (a request): what factorize gives
    return pd.factorize(customer_ids)[0]


def compute_row_features(
    store: FeatureStore,
    c: np.ndarray,
    a: np.ndarray,
    groups: np.ndarray | None,
    scores: np.ndarray | list[float] | ScoreColumns,
    sources: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`compute_features` for rows already looked up: ``c`` / ``a`` the store's customer
    and article rows (:meth:`FeatureStore.customer_rows`, :meth:`FeatureStore.article_rows`),
    ``groups`` an int per row naming its customer (:func:`customer_groups`; the batch re-ranker
    passes its own, so 271M ids are never Python strings). ``scores`` may come as
    :class:`ScoreColumns` worked out over the customers' whole lists (``groups`` then unused)."""
    n = len(c)
    out = np.empty((n, N_FEATURES), dtype=np.float32)
    if n == 0:
        return out
    score = scores if isinstance(scores, ScoreColumns) else ScoreColumns.of(groups, scores)  # type: ignore[arg-type]
    out[:, 0] = score.clipped
    out[:, 1] = score.best - score.clipped
    out[:, 2] = np.log1p(score.ranks)
    col = len(CANDIDATE_FEATURES)
    cust = store.customer_matrix[c]
    art = store.article_matrix[a]
    out[:, col : col + cust.shape[1]] = cust
    col += cust.shape[1]
    out[:, col : col + art.shape[1]] = art
    col += art.shape[1]

    pair_cols = _pair_columns(store, c, a, cust, art)
    for j, values in enumerate(pair_cols):
        out[:, col + j] = values
    col += len(pair_cols)
    if sources is None:
        sources = np.zeros((n, len(SOURCE_COLUMNS)), dtype=np.float32)
    if sources.shape != (n, len(SOURCE_COLUMNS)):
        raise ValueError(f"sources must be [{n}, {len(SOURCE_COLUMNS)}], got {sources.shape}")
    src = np.clip(
        np.nan_to_num(np.asarray(sources, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0), 0.0, SCORE_LIMIT
    )
    out[:, col : col + src.shape[1]] = np.log1p(src)
    out[:, col + src.shape[1]] = (src > 0).sum(axis=1)
    return out


def features_frame(matrix: np.ndarray) -> pd.DataFrame:
    """The feature matrix with named columns (for inspection, tests and reports)."""
    return pd.DataFrame(matrix, columns=FEATURE_NAMES)
