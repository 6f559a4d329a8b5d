"""The statistics that describe a purchase world, so a synthetic one can be compared with real rows.

``world_stats(transactions, customers=None, articles=None)`` returns a flat dict of named
figures (the same names as ``REAL_STATS``, measured on real H&M purchase histories; docs/synthetic.md
sets them beside a synthetic world). Definitions:

- basket: the rows of one customer on one day.
- repeat share: share of rows whose (customer, article) appeared in an earlier row of that
  customer (ever), with the previous occurrence at most 28 days before (within 28 days,
  same day included), or on the same day (same day: several units of one article).
- weekly active share: over full 7-day weeks counted from the first date, the mean share of
  buyers (customers with at least one row) who buy that week.
- top 1% / 10% share: share of rows held by the most-sold 1% / 10% of articles sold at least once.
- new-article share: share of rows whose article was first sold (in these rows) at most 27
  days before; only rows from day 28 on count, so the first weeks (where everything looks
  new) do not inflate it.
Everything is vectorised (sorts and bincounts), so 31.8M rows take seconds, not hours.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

WITHIN_DAYS = 28
QUANTILES_TX = {"p10": 0.10, "p25": 0.25, "median": 0.50, "p75": 0.75, "p90": 0.90, "p99": 0.99}
QUANTILES_BASKET = {"median": 0.50, "p75": 0.75, "p90": 0.90, "p99": 0.99}
QUANTILES_DAYS = {"p25": 0.25, "median": 0.50, "p75": 0.75, "p90": 0.90}
QUANTILES_PRICE = {"p5": 0.05, "p25": 0.25, "p50": 0.50, "p75": 0.75, "p95": 0.95, "p99": 0.99}
QUANTILES_AGE = {"p10": 0.10, "p25": 0.25, "median": 0.50, "p75": 0.75, "p90": 0.90}

# Measured on the complete histories of 1,364 real customers drawn from the public data set.
# Figures the real sheet does not give are absent (shown as "-").
REAL_STATS: dict[str, float] = {
    "articles": 105_542,
    "customers": 1_371_980,
    "transactions": 31_788_324,
    "tx_per_customer_p10": 2,
    "tx_per_customer_p25": 3,
    "tx_per_customer_median": 9,
    "tx_per_customer_p75": 26,
    "tx_per_customer_p90": 61,
    "tx_per_customer_p99": 195,
    "tx_per_customer_mean": 23.2,
    "days_per_customer_p25": 1,
    "days_per_customer_median": 3,
    "days_per_customer_p75": 8,
    "days_per_customer_p90": 16,
    "basket_rows_median": 2,
    "basket_rows_p75": 4,
    "basket_rows_p90": 8,
    "basket_rows_p99": 19,
    "basket_rows_mean": 3.6,
    "repeat_share_ever": 0.133,
    "repeat_share_28d": 0.124,
    "repeat_share_same_day": 0.099,
    "weekly_active_share": 0.054,
    "median_days_first_to_last": 184,
    "online_share": 0.71,
    "price_p5": 0.0076,
    "price_p25": 0.0159,
    "price_p50": 0.0254,
    "price_p75": 0.0339,
    "price_p95": 0.0593,
    "price_p99": 0.0925,
    "age_p10": 21,
    "age_p25": 24,
    "age_median": 31,
    "age_p75": 48,
    "age_p90": 56,
    "fn_share": 0.33,
    "active_share": 0.32,
}
MONTHLY_SHARE_REAL = [0.075, 0.064, 0.075, 0.088, 0.101, 0.107, 0.107, 0.084, 0.082, 0.079, 0.070, 0.069]
REAL_STATS.update({f"month_{m:02d}_share": s for m, s in enumerate(MONTHLY_SHARE_REAL, start=1)})


def _quantiles(values: np.ndarray, prefix: str, qs: Mapping[str, float]) -> dict[str, float]:
    if len(values) == 0:
        return {f"{prefix}_{name}": float("nan") for name in qs}
    # 'lower' keeps counts as counts (a median of 2 rows, not 2.5).
    found = np.quantile(values, list(qs.values()), method="lower")
    return {f"{prefix}_{name}": float(v) for name, v in zip(qs, found, strict=True)}


def _codes(series: pd.Series) -> np.ndarray:
    codes, _ = pd.factorize(series, sort=False)
    return codes.astype(np.int64)


def transaction_stats(transactions: pd.DataFrame) -> dict[str, float]:
    tx = transactions
    out: dict[str, float] = {"transactions": float(len(tx))}
    if len(tx) == 0:
        return out
    cust = _codes(tx["customer_id"])
    art = _codes(tx["article_id"])
    first = tx["t_dat"].min()
    day = ((tx["t_dat"] - first) / pd.Timedelta(days=1)).to_numpy().astype(np.int64)
    n_cust, n_art, n_days = cust.max() + 1, art.max() + 1, int(day.max()) + 1
    out["buyers"] = float(n_cust)
    out["articles_sold"] = float(n_art)

    per_customer = np.bincount(cust, minlength=n_cust)
    out.update(_quantiles(per_customer, "tx_per_customer", QUANTILES_TX))
    out["tx_per_customer_mean"] = float(per_customer.mean())

    basket_key = cust * n_days + day
    baskets, basket_rows = np.unique(basket_key, return_counts=True)
    out.update(_quantiles(basket_rows, "basket_rows", QUANTILES_BASKET))
    out["basket_rows_mean"] = float(basket_rows.mean())
    days_per_customer = np.bincount(baskets // n_days, minlength=n_cust)
    out.update(_quantiles(days_per_customer, "days_per_customer", QUANTILES_DAYS))

    # Repeats: sort by (customer, article, day); a row repeats when the previous row has the same pair.
    order = np.lexsort((day, art, cust))
    c, a, d = cust[order], art[order], day[order]
    same_pair = np.zeros(len(order), dtype=bool)
    same_pair[1:] = (c[1:] == c[:-1]) & (a[1:] == a[:-1])
    gap = np.zeros(len(order), dtype=np.int64)
    gap[1:] = d[1:] - d[:-1]
    out["repeat_share_ever"] = float(same_pair.mean())
    out["repeat_share_28d"] = float((same_pair & (gap <= WITHIN_DAYS)).mean())
    out["repeat_share_same_day"] = float((same_pair & (gap == 0)).mean())

    n_weeks = n_days // 7
    if n_weeks:
        full = day < n_weeks * 7
        week_buyers = np.unique(cust[full] * n_weeks + day[full] // 7) % n_weeks
        out["weekly_active_share"] = float(np.bincount(week_buyers, minlength=n_weeks).mean() / n_cust)
    first_day = np.full(n_cust, np.iinfo(np.int64).max)
    last_day = np.zeros(n_cust, dtype=np.int64)
    np.minimum.at(first_day, cust, day)
    np.maximum.at(last_day, cust, day)
    out["median_days_first_to_last"] = float(np.median(last_day - first_day))

    sales = np.sort(np.bincount(art, minlength=n_art))[::-1]
    for pct in (1, 10):
        top = max(1, int(np.ceil(n_art * pct / 100)))
        out[f"top{pct}pct_article_share"] = float(sales[:top].sum() / len(tx))

    article_first = np.full(n_art, np.iinfo(np.int64).max)
    np.minimum.at(article_first, art, day)
    counted = day >= WITHIN_DAYS
    out["new_article_share"] = (
        float(((day - article_first[art]) < WITHIN_DAYS)[counted].mean()) if counted.any() else float("nan")
    )

    out.update(_quantiles(tx["price"].to_numpy(dtype=np.float64), "price", QUANTILES_PRICE))
    out["online_share"] = float((tx["sales_channel_id"].to_numpy() == 2).mean())
    months = tx["t_dat"].dt.month.to_numpy()
    monthly = np.bincount(months, minlength=13)[1:] / len(tx)
    for m, share in enumerate(monthly, start=1):
        out[f"month_{m:02d}_share"] = float(share)
    return out


def customer_stats(customers: pd.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {"customers": float(len(customers))}
    if len(customers) == 0:
        return out
    age = customers["age"].to_numpy(dtype=np.float64)
    known = age[~np.isnan(age)]
    out.update(_quantiles(known, "age", QUANTILES_AGE))
    out["age_missing_share"] = float(np.isnan(age).mean())
    out["fn_share"] = float((customers["FN"].to_numpy(dtype=np.float64) == 1.0).mean())
    out["active_share"] = float((customers["Active"].to_numpy(dtype=np.float64) == 1.0).mean())
    return out


def world_stats(
    transactions: pd.DataFrame, customers: pd.DataFrame | None = None, articles: pd.DataFrame | None = None
) -> dict[str, float]:
    """All figures of a world (customer and catalogue figures only when those tables are given)."""
    out: dict[str, float] = {}
    if articles is not None:
        out["articles"] = float(len(articles))
    if customers is not None:
        out.update(customer_stats(customers))
    out.update(transaction_stats(transactions))
    return out


# Counts set by the scale (or by a sample's size), not by behaviour: never compared.
SCALE_COUNTS = frozenset({"articles", "customers", "transactions", "buyers", "articles_sold"})
WITHIN = 2.0  # a figure is in range when it lies within a factor WITHIN of the real one


def in_range(name: str, value: float, reference: Mapping[str, float] | None = None) -> str:
    """'yes' / 'OUT' when the figure lies within / outside 2x of the real one; '-' when there is
    no real figure (or it is a scale count, which the world's size decides)."""
    reference = REAL_STATS if reference is None else reference
    ref = reference.get(name)
    if ref is None or name in SCALE_COUNTS or value != value:
        return "-"
    if ref == 0:
        return "yes" if value == 0 else "OUT"
    ratio = value / ref
    return "yes" if 1 / WITHIN <= ratio <= WITHIN else "OUT"


def format_table(stats: Mapping[str, float], reference: Mapping[str, float] | None = None) -> str:
    """A plain table: statistic, value, real figure and whether the value is within 2x of it."""
    reference = REAL_STATS if reference is None else reference
    rows = [("statistic", "value", "real", "within_2x")]
    for name, value in stats.items():
        ref = reference.get(name)
        rows.append((name, _fmt(value), "-" if ref is None else _fmt(ref), in_range(name, value, reference)))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w0}}  {b:>{w1}}  {c:>10}  {d:>9}" for a, b, c, d in rows)


def _fmt(value: float) -> str:
    if value != value:  # NaN
        return "nan"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    if abs(value) < 0.1:
        return f"{value:.4f}"
    return f"{value:.3f}"
