"""Purchases, generated day by day in bounded memory.

The story of one purchase day (a basket):
1. Each customer has a number of shopping days (heavy-tailed, fans of the newsletter shop
   more) spread over a personal active window, following the real monthly volume.
2. The basket's first article comes from the customer's taste cluster (primary, sometimes
   secondary) weighted by what is on sale that day: base popularity x launch ramp and
   fade-out x season; or, sometimes, it is a re-buy of something the customer bought recently.
3. Further rows are extra units of the previous article (several sizes/units), articles
   related to the first one (other colours of it, its collection), re-buys, or new draws.
4. Price is the article's shelf price, marked down late in its life; the channel follows
   the customer's habit.
Nothing loops per transaction: each day is a handful of vectorised numpy operations.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from shared.synthetic.catalogue import N_RELATED, PRICE_SCALE, Catalogue, snap_price
from shared.synthetic.customers import Customers, Tastes
from shared.synthetic.scales import FIRST_DAY, N_DAYS

TRANSACTION_COLUMNS = ["t_dat", "customer_id", "article_id", "price", "sales_channel_id"]
MONTHLY_SHARE = np.array([.075, .064, .075, .088, .101, .107, .107, .084, .082, .079, .070, .069])
MEMORY = 4  # recent articles remembered per customer, for re-buys


@dataclass(frozen=True)
class Behaviour:
    """Knobs of the purchase story (tuned toward ../shared/data/real_stats.md)."""
    mean_rows_per_basket: float = 3.3
    primary_share: float = 0.90     # baskets drawn from the primary taste cluster
    extra_unit: float = 0.09        # a further row is another unit of the previous article
    related: float = 0.30           # ... or an article related to the basket's first one
    rebuy: float = 0.03             # ... or a re-buy from the customer's recent purchases
    rebuy_anchor: float = 0.10      # the basket's first article is a re-buy
    no_purchase_share: float = 0.007  # customers in customers.csv who never buy


def daily_volume() -> np.ndarray:
    days = [FIRST_DAY + timedelta(days=i) for i in range(N_DAYS)]
    month = np.array([d.month for d in days]) - 1
    weekday_boost = np.array([1.0 + 0.1 * (d.weekday() >= 4) for d in days])
    dim = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    w = MONTHLY_SHARE[month] / dim[month] * weekday_boost
    return w / w.sum()


def draw_baskets(rng: np.random.Generator, customers: Customers, n_rows: int,
                 behaviour: Behaviour) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer, day, rows) per basket, sorted by day then customer; rows sum to n_rows."""
    n = len(customers.activity)
    raw = customers.activity ** 1.3
    target_baskets = n_rows / behaviour.mean_rows_per_basket
    shopping_days = np.maximum(1, np.round(raw * target_baskets / raw.sum())).astype(np.int64)
    shopping_days = np.minimum(shopping_days, N_DAYS // 3)
    shopping_days[rng.random(n) < behaviour.no_purchase_share] = 0
    # Active window: longer for frequent shoppers; median first-to-last span about half a year.
    span = np.minimum(N_DAYS, 60 * shopping_days + rng.exponential(700, n)).astype(np.int64)
    start = rng.integers(-(span // 3), N_DAYS - (2 * span) // 3)
    lo, hi = np.clip(start, 0, N_DAYS - 1), np.clip(start + span, 0, N_DAYS - 1)
    cdf = np.concatenate([[0.0], np.cumsum(daily_volume())])
    cust = np.repeat(np.arange(n, dtype=np.int64), shopping_days)
    u = cdf[lo[cust]] + rng.random(len(cust)) * (cdf[hi[cust] + 1] - cdf[lo[cust]])
    day = np.clip(np.searchsorted(cdf, u, side="right") - 1, 0, N_DAYS - 1)
    key = np.unique(day * n + cust)  # one basket per customer and day, sorted by day then customer
    day, cust = key // n, key % n
    rows = np.minimum(np.ceil(rng.lognormal(np.log(1.6), 1.05, len(key))), 80).astype(np.int64)
    rows = _adjust_total(rng, rows, n_rows)
    return cust, day, rows


def _adjust_total(rng: np.random.Generator, rows: np.ndarray, total: int) -> np.ndarray:
    """Add or remove single rows at random baskets so the rows sum exactly to ``total``."""
    diff = total - int(rows.sum())
    while diff != 0:
        if diff > 0:
            np.add.at(rows, rng.integers(0, len(rows), diff), 1)
        else:
            big = np.flatnonzero(rows > 1)
            pick = rng.choice(big, size=min(-diff, len(big)), replace=False)
            rows[pick] -= 1
        diff = total - int(rows.sum())
    return rows


class DayGenerator:
    """Draws the articles of one day's baskets and remembers each customer's recent purchases."""

    def __init__(self, rng: np.random.Generator, catalogue: Catalogue, customers: Customers, tastes: Tastes,
                 behaviour: Behaviour) -> None:
        self.rng, self.cat, self.cust, self.tastes, self.b = rng, catalogue, customers, tastes, behaviour
        n = len(customers.activity)
        self.memory = np.full((n, MEMORY), -1, dtype=np.int64)
        self.memory_day = np.zeros((n, MEMORY), dtype=np.int64)
        self.memory_next = np.zeros(n, dtype=np.int64)
        cat = catalogue
        # Per-article lifecycle constants.
        self.tau = np.maximum((cat.end - cat.launch) / 3.0, 7.0)

    def demand(self, day: int, on_sale: np.ndarray) -> np.ndarray:
        cat = self.cat
        age = day - cat.launch[on_sale]
        ramp = np.minimum(1.0, (age + 1) / 10.0)
        fade = 0.15 + 0.85 * np.exp(-age / self.tau[on_sale])
        closing = np.clip((cat.end[on_sale] - day) / 14.0, 0.2, 1.0)
        doy = (FIRST_DAY + timedelta(days=day)).timetuple().tm_yday
        season = np.exp(cat.season_amp[on_sale] * np.cos(2 * np.pi * (doy - cat.season_peak[on_sale]) / 365.25))
        return cat.popularity[on_sale] * ramp * fade * closing * season

    def day(self, day: int, cust: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Articles, prices and channels of the rows of the baskets (cust, rows) on ``day``."""
        rng, cat, b = self.rng, self.cat, self.b
        on_sale = np.flatnonzero((cat.launch <= day) & (cat.end > day))
        weights = self.tastes.affinity[:, on_sale] * self.demand(day, on_sale)[None, :]
        k = weights.shape[0]
        cdf = np.cumsum(weights, axis=1)
        cdf = (cdf / cdf[:, -1:] + np.arange(k)[:, None]).ravel()

        n_rows = int(rows.sum())
        basket = np.repeat(np.arange(len(cust)), rows)
        first_row = np.cumsum(rows) - rows
        pos = np.arange(n_rows) - first_row[basket]
        row_cust = cust[basket]
        cluster = np.where(rng.random(len(cust)) < b.primary_share, self.cust.primary[cust], self.cust.secondary[cust])
        u = cluster[basket] + rng.random(n_rows) * 0.999999
        article = on_sale[np.minimum(np.searchsorted(cdf, u), len(cdf) - 1) % len(on_sale)]

        # Re-buys: the basket's first row, or later rows, from the customer's recent purchases.
        slot = rng.integers(0, MEMORY, n_rows)
        remembered = self.memory[row_cust, slot]
        age = day - self.memory_day[row_cust, slot]
        fresh = (age <= 28) | (rng.random(n_rows) < 0.1)
        p_rebuy = np.where(pos == 0, b.rebuy_anchor, b.rebuy)
        kind = rng.random(n_rows)
        rebuy = (kind < p_rebuy) & (remembered >= 0) & fresh
        rebuy &= self._on_sale(np.maximum(remembered, 0), day)
        article = np.where(rebuy, remembered, article)

        anchor = article[first_row][basket]
        related = cat.related[anchor, rng.integers(0, N_RELATED, n_rows)]
        is_related = (pos > 0) & (kind >= p_rebuy) & (kind < p_rebuy + b.related) & self._on_sale(related, day)
        article = np.where(is_related, related, article)
        extra = (pos > 0) & (kind >= 1.0 - b.extra_unit)
        # Extra units repeat the previous row: forward-fill from the last row that is not one.
        source = np.where(extra, 0, np.arange(n_rows))
        np.maximum.accumulate(source, out=source)
        article = article[source]
        price = self._prices(article, day)[source]  # extra units share their row's price
        channel = np.where(rng.random(len(cust)) < self.cust.online[cust], 2, 1)[basket].astype(np.int64)
        self._remember(cust, article[first_row], day)
        last = first_row + rows - 1
        self._remember(cust[rows > 1], article[last[rows > 1]], day)
        return article, price, channel

    def _on_sale(self, article: np.ndarray, day: int) -> np.ndarray:
        return (self.cat.launch[article] <= day) & (self.cat.end[article] > day)

    def _prices(self, article: np.ndarray, day: int) -> np.ndarray:
        cat, rng = self.cat, self.rng
        n = len(article)
        life = (day - cat.launch[article]) / np.maximum(cat.end[article] - cat.launch[article], 1)
        markdown = (life > 0.6) & (rng.random(n) < 0.6)
        factor = np.where(markdown, rng.uniform(0.4, 0.8, n), np.where(rng.random(n) < 0.1, 0.9, 1.0))
        units = np.where(factor < 1.0, snap_price(cat.price_units[article] * factor), cat.price_units[article])
        return units / PRICE_SCALE

    def _remember(self, cust: np.ndarray, article: np.ndarray, day: int) -> None:
        slot = self.memory_next[cust] % MEMORY
        self.memory[cust, slot] = article
        self.memory_day[cust, slot] = day
        self.memory_next[cust] += 1


def generate_transactions(rng: np.random.Generator, catalogue: Catalogue, customers: Customers, tastes: Tastes,
                          n_rows: int, behaviour: Behaviour | None = None) -> Iterator[pa.Table]:
    """Yield transactions as arrow tables of a few days each, in date order."""
    behaviour = behaviour or Behaviour()
    cust, day, rows = draw_baskets(rng, customers, n_rows, behaviour)
    generator = DayGenerator(rng, catalogue, customers, tastes, behaviour)
    customer_ids = pa.array(customers.frame["customer_id"].to_numpy(dtype=object), pa.string())
    article_ids = pa.array(catalogue.frame["article_id"].to_numpy(dtype=object), pa.string())
    dates = pa.array([(FIRST_DAY + timedelta(days=i)).isoformat() for i in range(N_DAYS)], pa.string())
    bounds = np.searchsorted(day, np.arange(N_DAYS + 1))
    pending: list[tuple[np.ndarray, ...]] = []
    pending_rows = 0
    for d in range(N_DAYS):
        lo, hi = bounds[d], bounds[d + 1]
        if lo == hi:
            continue
        c, r = cust[lo:hi], rows[lo:hi]
        article, price, channel = generator.day(d, c, r)
        pending.append((np.full(len(article), d), np.repeat(c, r), article, price, channel))
        pending_rows += len(article)
        if pending_rows >= 500_000 or d == N_DAYS - 1:
            yield _table(pending, customer_ids, article_ids, dates)
            pending, pending_rows = [], 0
    if pending:
        yield _table(pending, customer_ids, article_ids, dates)


def _table(parts: list[tuple[np.ndarray, ...]], customer_ids: pa.Array, article_ids: pa.Array,
           dates: pa.Array) -> pa.Table:
    d, c, a, p, ch = (np.concatenate(x) for x in zip(*parts, strict=True))
    return pa.table({
        "t_dat": pc.take(dates, pa.array(d)),
        "customer_id": pc.take(customer_ids, pa.array(c)),
        "article_id": pc.take(article_ids, pa.array(a)),
        "price": pa.array(p, pa.float64()),
        "sales_channel_id": pa.array(ch, pa.int64()),
    })


def write_transactions(path: Path, tables: Iterator[pa.Table]) -> int:
    """Stream tables to ``transactions_train.csv``; returns the number of rows written."""
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    written = 0
    with open(path, "wb") as sink:
        sink.write((",".join(TRANSACTION_COLUMNS) + "\n").encode())
        for table in tables:
            pacsv.write_csv(table, sink, options)
            written += table.num_rows
    return written
