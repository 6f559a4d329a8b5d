"""Browsing sessions for a synthetic world's purchases: views, clicks and carts that lead to a
purchase, and carts and browsing that do not.

Derived from the world's transactions (so any world, or a real transactions file, gets
sessions consistent with what was bought), for a window of days, deterministic per seed.
The story of one purchase of article A by customer C on day d:

- *online* purchases (``sales_channel_id == 2``, ~70 % on H&M's data) always have a
  lead-up: a click on A, sometimes more views of it, and a cart of A, then the purchase
  event itself; *store* purchases have one with probability ``store_leadup`` (shoppers who
  look online and buy in a shop);
- the lead-up happens ``lag`` days before d: the same day with probability ``same_day``,
  else 1 + geometric days (consideration time), at most ``max_lag`` days;
- around it, the shopper views substitutes (other articles of A's product type, by their
  sales in the window) and puts some of them in the cart without buying them (abandoned
  carts), and views a few best sellers;
- customers who buy nothing in the window browse too (``browse_sessions`` per purchase):
  views of one product type, an occasional abandoned cart.

The ratios (defaults), and where they come from:

- cart -> purchase ~ 1 in 3 (``abandoned_carts`` = 2 per online purchase): the
  RetailRocket public log has 69,332 add-to-carts for 22,457 purchases (3.1 : 1), and the
  Baymard Institute's survey average of cart abandonment is ~70 %;
- views per purchase ~ 10 here against ~119 in RetailRocket (2,664,312 views): scaled down
  to keep the file small; so each view here says more than a real one would. Said, not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

SESSION_COLUMNS = ["customer_id", "article_id", "type", "ts"]
ONLINE_CHANNEL = 2


@dataclass(frozen=True)
class SessionBehaviour:
    store_leadup: float = 0.3
    same_day: float = 0.5
    lag_p: float = 0.5  # geometric lag (days) beyond the first, when not the same day
    max_lag: int = 6
    extra_views: float = 0.5  # Poisson mean: more views of the bought article
    substitutes: float = 4.0  # Poisson mean: views of other articles of its product type
    abandoned_carts: float = 2.0  # Poisson mean per online purchase: substitutes carted, not bought
    best_seller_views: float = 2.0  # Poisson mean: views of the window's best sellers
    browse_sessions: float = 0.5  # sessions of non-buyers per purchase lead-up
    browse_views: float = 5.0


def _epoch(days: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds (UTC) of ``seconds`` into each day."""
    midnight = np.asarray(days).astype("datetime64[D]").astype("datetime64[s]").astype(np.int64)
    return midnight.astype(np.float64) + seconds


def _pick_by_type(
    rng: np.random.Generator, types: np.ndarray, by_type: dict[int, np.ndarray], by_type_p: dict[int, np.ndarray]
) -> np.ndarray:
    """One article of each given product type (code), by its sales in the window."""
    out = np.empty(len(types), dtype=np.int64)
    for t in np.unique(types):
        idx = np.flatnonzero(types == t)
        out[idx] = rng.choice(by_type[t], size=len(idx), p=by_type_p[t])
    return out


@dataclass
class _Pool:
    """The window's articles with their product type and sales weights."""

    article_ids: np.ndarray
    type_of: np.ndarray
    by_type: dict[int, np.ndarray]
    by_type_p: dict[int, np.ndarray]
    best: np.ndarray
    best_p: np.ndarray


def _pool(articles: pd.DataFrame, window: pd.DataFrame) -> _Pool:
    ids = articles["article_id"].astype(str).to_numpy()
    types = pd.factorize(articles["product_type_name"].astype(str))[0]
    sales = pd.Series(window["article_id"].astype(str)).value_counts()
    weight = sales.reindex(ids).fillna(0).to_numpy() + 0.1  # unsold articles are seen, rarely
    by_type, by_type_p = {}, {}
    for t in np.unique(types):
        members = np.flatnonzero(types == t)
        by_type[t], by_type_p[t] = members, weight[members] / weight[members].sum()
    best = np.argsort(-weight)[:200]
    return _Pool(ids, types, by_type, by_type_p, best, weight[best] / weight[best].sum())


def _events(owner: np.ndarray, article: np.ndarray, type_: str, ts: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"owner": owner, "article": article, "type": type_, "ts": ts})


def _leadup_events(
    rng: np.random.Generator,
    pool: _Pool,
    art: np.ndarray,
    online: np.ndarray,
    base: np.ndarray,
    bought_at: np.ndarray,
    b: SessionBehaviour,
) -> list[pd.DataFrame]:
    """Every event of the lead-ups (row i = purchase i), ``owner`` = that row."""
    n = len(art)
    rows = np.arange(n)
    minutes = lambda size: rng.uniform(0, 45 * 60, size)  # noqa: E731 - within the visit
    parts = [_events(rows, art, "click", base)]
    extra = np.repeat(rows, rng.poisson(b.extra_views, n))
    parts.append(_events(extra, art[extra], "view", base[extra] + minutes(len(extra))))
    on = rows[online]
    parts.append(_events(on, art[on], "cart", base[on] + rng.uniform(60, 45 * 60, len(on))))
    parts.append(_events(on, art[on], "purchase", bought_at[on]))
    subs = np.repeat(rows, rng.poisson(b.substitutes, n))
    parts.append(
        _events(
            subs,
            _pick_by_type(rng, pool.type_of[art[subs]], pool.by_type, pool.by_type_p),
            "view",
            base[subs] + minutes(len(subs)),
        )
    )
    ab = np.repeat(on, rng.poisson(b.abandoned_carts, len(on)))
    ab_art = _pick_by_type(rng, pool.type_of[art[ab]], pool.by_type, pool.by_type_p)
    ab_ts = base[ab] + minutes(len(ab))
    parts += [_events(ab, ab_art, "view", ab_ts), _events(ab, ab_art, "cart", ab_ts + 30.0)]
    best = np.repeat(rows, rng.poisson(b.best_seller_views, n))
    parts.append(
        _events(best, rng.choice(pool.best, size=len(best), p=pool.best_p), "view", base[best] + minutes(len(best)))
    )
    return parts


def _browsing(
    rng: np.random.Generator,
    pool: _Pool,
    candidates: np.ndarray,
    last_type: np.ndarray,
    n_sessions: int,
    days: np.ndarray,
    b: SessionBehaviour,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Sessions of customers who buy nothing in the window: (events, customer of each session)."""
    if n_sessions == 0 or not len(candidates):
        return _events(np.zeros(0, int), np.zeros(0, int), "view", np.zeros(0)), np.zeros(0, dtype=object)
    pick = rng.integers(0, len(candidates), n_sessions)
    base = _epoch(rng.choice(days, n_sessions), rng.uniform(8 * 3600, 22 * 3600, n_sessions))
    rows = np.arange(n_sessions)
    views = np.repeat(rows, rng.poisson(b.browse_views, n_sessions))
    arts = _pick_by_type(rng, last_type[pick][views], pool.by_type, pool.by_type_p)
    frame = _events(views, arts, "view", base[views] + rng.uniform(0, 45 * 60, len(views)))
    carted = frame[rng.random(len(frame)) < 0.05].assign(type="cart", ts=lambda f: f["ts"] + 30.0)
    return pd.concat([frame, carted], ignore_index=True), candidates[pick]


def synthesise_sessions(
    transactions: pd.DataFrame,
    articles: pd.DataFrame,
    start: date,
    end: date,
    seed: int = 0,
    behaviour: SessionBehaviour | None = None,
) -> pd.DataFrame:
    """Events (customer_id, article_id, type, ts epoch seconds) of purchases on days
    [start, end) and of non-buyers' browsing in that window, oldest first."""
    b = behaviour or SessionBehaviour()
    rng = np.random.default_rng([seed, 17])
    day = pd.to_datetime(transactions["t_dat"])
    in_window = (day >= pd.Timestamp(start)) & (day < pd.Timestamp(end))
    window = transactions[in_window].assign(t_dat=day[in_window])
    pool = _pool(articles, window)
    position = pd.Series(np.arange(len(pool.article_ids)), index=pool.article_ids)
    bought = window.drop_duplicates(["customer_id", "article_id", "t_dat"])
    bought = bought[bought["article_id"].astype(str).isin(position.index)]
    online = bought["sales_channel_id"].to_numpy() == ONLINE_CHANNEL
    keep = online | (rng.random(len(bought)) < b.store_leadup)
    bought, online = bought[keep], online[keep]
    n = len(bought)
    lag = np.where(rng.random(n) < b.same_day, 0, np.minimum(b.max_lag, rng.geometric(b.lag_p, n)))
    days = bought["t_dat"].to_numpy()
    base = _epoch(days - lag.astype("timedelta64[D]"), rng.uniform(8 * 3600, 20 * 3600, n))
    bought_at = np.where(
        lag == 0,
        base + 45 * 60 + rng.uniform(60, 7200, n),  # after the visit
        _epoch(days, rng.uniform(9 * 3600, 21 * 3600, n)),
    )
    art = position[bought["article_id"].astype(str)].to_numpy()
    lead = pd.concat(_leadup_events(rng, pool, art, online, base, bought_at, b), ignore_index=True)
    lead["customer_id"] = bought["customer_id"].astype(str).to_numpy()[lead["owner"]]

    history = transactions[day < pd.Timestamp(start)]
    recent = history.drop_duplicates("customer_id", keep="last")
    recent = recent[
        ~recent["customer_id"].isin(window["customer_id"]) & recent["article_id"].astype(str).isin(position.index)
    ]
    last_type = pool.type_of[position[recent["article_id"].astype(str)].to_numpy()]
    window_days = pd.date_range(start, end, inclusive="left").to_numpy()
    browse, owners = _browsing(
        rng, pool, recent["customer_id"].astype(str).to_numpy(), last_type, int(b.browse_sessions * n), window_days, b
    )
    browse["customer_id"] = owners[browse["owner"]] if len(browse) else []

    events = pd.concat([lead, browse], ignore_index=True)
    events["article_id"] = pool.article_ids[events["article"].to_numpy()]
    lo, hi = (
        _epoch(np.array([np.datetime64(start)]), np.zeros(1))[0],
        _epoch(np.array([np.datetime64(end)]), np.zeros(1))[0],
    )
    events = events[(events["ts"] >= lo - b.max_lag * 86400) & (events["ts"] < hi)]
    return events.sort_values("ts", kind="stable")[SESSION_COLUMNS].reset_index(drop=True)
