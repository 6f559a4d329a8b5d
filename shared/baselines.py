"""Non-learned recommenders every model must beat: random, popular, age-band popular, repurchase.

Pure functions over a purchase *history* (transactions strictly before the cutoff; the
caller does the split). Each returns ranked article lists, best first, at most ``k`` long,
without repeats. They are vectorised with pandas group-bys, so they run at the full data
set's scale (31.8M rows) in seconds to a minute.

Popularity is counted in transaction rows over a window that ends at the cutoff
(``[cutoff - window_days, cutoff)``). The cutoff defaults to the day after the last history
row, i.e. the first day of the week being predicted. Ties are broken by article id so that
results are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

from shared.age_bands import BASELINE_BANDS, baseline_band

# Defaults of the repurchase baseline: own purchases of the last 4 weeks (on real data
# 12.4% of rows repeat an article bought within 28 days, versus 13.3% ever, so a longer
# window adds little but noise), ranked by most recent purchase day, then by count.
REPURCHASE_WINDOW_DAYS = 28
POPULAR_WINDOW_DAYS = 7
# Trending: last week's sales times their growth over the week before, the growth capped (a
# first sale is not an infinite trend); thin age bands lean on the shop's trend.
TREND_GROWTH_CAP = 3.0
TREND_SHOP_WEIGHT = 0.1
# Time-decayed popularity (a public H&M kernel's): each sale of the last 4 weeks counts
# 1 / (1 + days before the cutoff / 7).
DECAY_WINDOW_DAYS = 28


def _end_of(history: pd.DataFrame, cutoff: date | pd.Timestamp | None) -> pd.Timestamp:
    """The first day after the history: the explicit cutoff, or the last history day + 1."""
    if cutoff is not None:
        return pd.Timestamp(cutoff).normalize()
    if history.empty:
        return pd.Timestamp("1970-01-01")
    return pd.Timestamp(history["t_dat"].max()).normalize() + pd.Timedelta(days=1)


def _window(history: pd.DataFrame, end: pd.Timestamp, days: int | None) -> pd.DataFrame:
    """Rows in ``[end - days, end)``; ``days=None`` keeps everything before ``end``."""
    t = history["t_dat"]
    mask = t < end
    if days is not None:
        mask &= t >= end - pd.Timedelta(days=days)
    return history[mask]


def _ranked_by_count(rows: pd.DataFrame) -> list[str]:
    """Article ids ordered by row count (descending), ties by article id."""
    if rows.empty:
        return []
    counts = rows["article_id"].astype(str).value_counts()
    frame = pd.DataFrame({"article_id": counts.index.astype(str), "n": counts.to_numpy()})
    frame = frame.sort_values(["n", "article_id"], ascending=[False, True], kind="stable")
    return frame["article_id"].tolist()


def _extend_unique(first: list[str], rest: Sequence[str], k: int) -> list[str]:
    """``first`` followed by items of ``rest`` not already in it, at most ``k`` items."""
    out = list(dict.fromkeys(first))[:k]
    seen = set(out)
    for article in rest:
        if len(out) >= k:
            break
        if article not in seen:
            out.append(article)
            seen.add(article)
    return out


def popular_articles(
    history: pd.DataFrame,
    k: int = 12,
    cutoff: date | pd.Timestamp | None = None,
    window_days: int | None = POPULAR_WINDOW_DAYS,
) -> list[str]:
    """The ``k`` best-selling articles of the last ``window_days`` before the cutoff.

    When the window sold fewer than ``k`` distinct articles (short lists matter for
    recall@500), the list continues with the best sellers of the whole history.
    """
    end = _end_of(history, cutoff)
    recent = _ranked_by_count(_window(history, end, window_days))
    if len(recent) >= k or window_days is None:
        return recent[:k]
    return _extend_unique(recent, _ranked_by_count(_window(history, end, None)), k)


def random_recommendations(
    customer_ids: Sequence[str],
    articles: Sequence[str] | pd.Series | np.ndarray,
    k: int = 12,
    seed: int = 0,
) -> dict[str, list[str]]:
    """For each customer, ``k`` distinct articles drawn uniformly from ``articles``.

    Deterministic for a seed and the order of ``customer_ids``.
    """
    pool = np.asarray(pd.unique(pd.Series(articles, dtype="str")), dtype=object)
    if len(pool) == 0:
        return {c: [] for c in customer_ids}
    rng = np.random.default_rng(seed)
    take = min(k, len(pool))
    return {c: pool[rng.choice(len(pool), size=take, replace=False)].tolist() for c in customer_ids}


def age_popular_recommendations(
    history: pd.DataFrame,
    customers: pd.DataFrame,
    customer_ids: Sequence[str],
    k: int = 12,
    cutoff: date | pd.Timestamp | None = None,
    window_days: int | None = POPULAR_WINDOW_DAYS,
) -> dict[str, list[str]]:
    """Best sellers of the customer's age band over the window, then global best sellers.

    ``customers`` needs ``customer_id`` and ``age``. A customer whose age is unknown (or
    who is absent from ``customers``) gets the global list.
    """
    end = _end_of(history, cutoff)
    global_list = popular_articles(history, k, end, window_days)
    ages = customers[["customer_id", "age"]].copy()
    ages["band"] = baseline_band(ages["age"])
    wanted = ages[ages["customer_id"].isin(pd.Index(customer_ids))]
    band_of = dict(zip(wanted["customer_id"].astype(str), wanted["band"], strict=True))

    recent = _window(history, end, window_days)
    recent = recent.merge(ages[["customer_id", "band"]], on="customer_id", how="inner")
    lists: dict[object, list[str]] = {}
    for label, _, _ in BASELINE_BANDS:
        in_band = _ranked_by_count(recent[recent["band"] == label])
        lists[label] = _extend_unique(in_band, global_list, k)

    result: dict[str, list[str]] = {}
    for c in customer_ids:
        band = band_of.get(c)
        result[c] = lists[band] if isinstance(band, str) else global_list
    return result


def repurchase_ranking(
    history: pd.DataFrame,
    customer_ids: Sequence[str] | None = None,
    cutoff: date | pd.Timestamp | None = None,
    window_days: int | None = REPURCHASE_WINDOW_DAYS,
) -> dict[str, list[str]]:
    """Each customer's own purchases of the window: most recent day first, then most often.

    Only customers with a purchase in the window appear. ``customer_ids`` limits the work
    to those customers (the group-by runs once over their rows, never per customer).
    """
    end = _end_of(history, cutoff)
    rows = _window(history, end, window_days)
    if customer_ids is not None:
        rows = rows[rows["customer_id"].isin(pd.Index(customer_ids))]
    if rows.empty:
        return {}
    stats = (
        rows.groupby(["customer_id", "article_id"], observed=True, sort=False)["t_dat"]
        .agg(last="max", n="size")
        .reset_index()
    )
    stats = stats.sort_values(
        ["customer_id", "last", "n", "article_id"], ascending=[True, False, False, True], kind="stable"
    )
    grouped = stats.groupby("customer_id", sort=False)["article_id"].agg(list)
    return {str(c): [str(a) for a in arts] for c, arts in grouped.items()}


def trend_scores(
    articles: np.ndarray, days: np.ndarray, cutoff_day: int, n_articles: int, growth_cap: float = TREND_GROWTH_CAP
) -> np.ndarray:
    """float64 [n_articles]: ``sales_7d * min(growth_cap, (sales_7d + 1) / (sales_prev_7d + 1))``.

    ``articles`` are integer positions and ``days`` day numbers of the rows to count (the
    caller selects e.g. one age band's rows); rows on or after ``cutoff_day`` are ignored.
    e.g. 4 sales last week after 1 the week before: 4 * min(3, 5 / 2) = 10.
    """
    last = (days >= cutoff_day - 7) & (days < cutoff_day)
    prev = (days >= cutoff_day - 14) & (days < cutoff_day - 7)
    w1 = np.bincount(articles[last], minlength=n_articles).astype(np.float64)
    w0 = np.bincount(articles[prev], minlength=n_articles).astype(np.float64)
    return w1 * np.minimum(growth_cap, (w1 + 1.0) / (w0 + 1.0))


def _encoded(history: pd.DataFrame, end: pd.Timestamp) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(article ids, article position per row, day number per row, cutoff day) of the history."""
    rows = history[history["t_dat"] < end]
    ids, pos = np.unique(rows["article_id"].astype(str).to_numpy(), return_inverse=True)
    days = rows["t_dat"].to_numpy().astype("datetime64[D]").astype(np.int64)
    return ids, pos, days, int(np.datetime64(end.date(), "D").astype(np.int64))


def _top(ids: np.ndarray, score: np.ndarray, k: int) -> list[str]:
    order = np.lexsort((ids, -score))
    return [str(ids[i]) for i in order[:k] if score[i] > 0]


def decayed_popular_articles(
    history: pd.DataFrame, k: int = 12, cutoff: date | pd.Timestamp | None = None, window_days: int = DECAY_WINDOW_DAYS
) -> list[str]:
    """Best sellers of the last ``window_days``, each sale weighted ``1 / (1 + days ago / 7)``
    (days ago = 1 for the day before the cutoff); then plain best sellers to fill."""
    end = _end_of(history, cutoff)
    ids, pos, days, cut = _encoded(_window(history, end, window_days), end)
    weight = 1.0 / (1.0 + (cut - days) / 7.0)
    top = _top(ids, np.bincount(pos, weights=weight, minlength=len(ids)), k) if len(ids) else []
    return _extend_unique(top, popular_articles(history, k, end), k)


def age_trending_recommendations(
    history: pd.DataFrame,
    customers: pd.DataFrame,
    customer_ids: Sequence[str],
    k: int = 12,
    cutoff: date | pd.Timestamp | None = None,
) -> dict[str, list[str]]:
    """What is trending (:func:`trend_scores`) in the customer's age band, smoothed towards the
    shop's trend; unknown ages get the shop's list; then best sellers to fill."""
    end = _end_of(history, cutoff)
    ids, pos, days, cut = _encoded(_window(history, end, 14), end)
    fill = popular_articles(history, k, end)
    if not len(ids):
        return dict.fromkeys(customer_ids, fill)
    rows = history[(history["t_dat"] < end) & (history["t_dat"] >= end - pd.Timedelta(days=14))]
    ages = customers.drop_duplicates("customer_id").set_index("customer_id")["age"]
    band = baseline_band(ages.reindex(rows["customer_id"].astype(str).to_numpy()).reset_index(drop=True))
    shop = trend_scores(pos, days, cut, len(ids))
    lists = {"": _extend_unique(_top(ids, shop, k), fill, k)}
    for label, _, _ in BASELINE_BANDS:
        mine = (band == label).to_numpy()
        score = trend_scores(pos[mine], days[mine], cut, len(ids)) + TREND_SHOP_WEIGHT * shop
        lists[label] = _extend_unique(_top(ids, score, k), fill, k)
    customer_band = baseline_band(ages.reindex(list(customer_ids)).reset_index(drop=True)).fillna("").tolist()
    return {c: lists[b] for c, b in zip(customer_ids, customer_band, strict=True)}


def repurchase_then(
    own: dict[str, list[str]], fill: dict[str, list[str]] | list[str], customer_ids: Sequence[str], k: int
) -> dict[str, list[str]]:
    """Each customer's own list, then the fill (one list for all, or one per customer)."""

    def fill_of(c: str) -> list[str]:
        return fill if isinstance(fill, list) else fill[c]

    return {c: _extend_unique(own.get(c, []), fill_of(c), k) for c in customer_ids}


def repurchase_popular_recommendations(
    history: pd.DataFrame,
    customer_ids: Sequence[str],
    k: int = 12,
    cutoff: date | pd.Timestamp | None = None,
    repurchase_window_days: int | None = REPURCHASE_WINDOW_DAYS,
    popular_window_days: int | None = POPULAR_WINDOW_DAYS,
) -> dict[str, list[str]]:
    """The customer's own recent purchases (``repurchase_ranking``), then global best sellers."""
    end = _end_of(history, cutoff)
    popular = popular_articles(history, k, end, popular_window_days)
    own = repurchase_ranking(history, customer_ids, end, repurchase_window_days)
    return {c: _extend_unique(own[c], popular, k) if c in own else popular for c in customer_ids}
