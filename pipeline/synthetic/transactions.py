"""Purchases, generated day by day in bounded memory.

The story of one purchase day (a basket):
1. Each customer has a number of shopping days (heavy-tailed, fans of the newsletter shop
   more) spread over a personal active window, following the real monthly volume.
2. Every row is one of: a fresh draw, weighted by what is on sale that day (base popularity
   x launch ramp and fade-out x season x trend bursts) and, for part of the draws, by the
   customer's taste cluster (primary, sometimes secondary); or it comes from the customer's
   own recent purchases, kept across days: a re-buy of an earlier article, one of an earlier
   article's stable partners ("bought next"), or another colour of an earlier product code.
   Each of those picks an earlier purchase and keeps it with a probability that decays with
   its age, so last week's purchases predict this week's far better than last season's.
3. Rows after the first can also be another unit of the previous article (several sizes or
   units) or a partner / another colour of the basket's first article ("bought together").
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

from pipeline.synthetic.catalogue import (
    N_AGE_SEGMENTS,
    N_PARTNERS,
    PARTNER_P,
    PRICE_SCALE,
    Catalogue,
    snap_price,
)
from pipeline.synthetic.customers import Customers, Tastes
from pipeline.synthetic.scales import FIRST_DAY, N_DAYS

TRANSACTION_COLUMNS = ["t_dat", "customer_id", "article_id", "price", "sales_channel_id"]
MONTHLY_SHARE = np.array([0.075, 0.064, 0.075, 0.088, 0.101, 0.107, 0.107, 0.084, 0.082, 0.079, 0.070, 0.069])
MEMORY = 12  # recent purchases remembered per customer (rows, newest overwrite oldest)
TREND_SPILL = 0.05  # a burst of one age segment lifts the others (and taste draws) this much


@dataclass(frozen=True)
class Behaviour:
    """Knobs of the purchase story (tuned toward pipeline.data_stats.REAL_STATS and the real
    ordering of methods; docs/synthetic.md gives each knob's target and measured value)."""

    mean_rows_per_basket: float = 3.3
    taste_share: float = 0.20  # fresh draws weighted by the customer's taste cluster (else by
    # what their age segment leans to)
    primary_share: float = 0.80  # ... of those, from the primary cluster (else the secondary)
    extra_unit: float = 0.11  # a further row is another unit of the previous article
    together: float = 0.22  # ... or a partner / other colour of the basket's first article
    together_colour: float = 0.3  # share of those that are another colour
    # Rows from the customer's own earlier purchases (first row of a basket, later rows):
    rebuy: tuple[float, float] = (0.10, 0.025)  # the same article again
    partner: tuple[float, float] = (0.40, 0.16)  # a partner of it (bought next)
    colour: tuple[float, float] = (0.18, 0.07)  # another colour of its product code
    recent_pick: float = 0.50  # the k-th latest purchase is picked with prob. ~ (1 - p)^(k-1) ...
    recency_days: float = 30.0  # an earlier purchase is kept with prob. exp(-age / recency_days) ...
    old_keep: float = 0.03  # ... or this floor, whatever its age
    no_purchase_share: float = 0.007  # customers in customers.csv who never buy


def daily_volume() -> np.ndarray:
    days = [FIRST_DAY + timedelta(days=i) for i in range(N_DAYS)]
    month = np.array([d.month for d in days]) - 1
    weekday_boost = np.array([1.0 + 0.1 * (d.weekday() >= 4) for d in days])
    dim = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    w = MONTHLY_SHARE[month] / dim[month] * weekday_boost
    return w / w.sum()


def draw_baskets(
    rng: np.random.Generator, customers: Customers, n_rows: int, behaviour: Behaviour
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer, day, rows) per basket, sorted by day then customer; rows sum to n_rows."""
    n = len(customers.activity)
    raw = customers.activity**1.3
    target_baskets = n_rows / behaviour.mean_rows_per_basket
    shopping_days = np.maximum(1, np.round(raw * target_baskets / raw.sum())).astype(np.int64)
    shopping_days = np.minimum(shopping_days, N_DAYS // 3)
    shopping_days[rng.random(n) < behaviour.no_purchase_share] = 0
    # Active window: longer for frequent shoppers; median first-to-last span about half a year.
    # Windows are centred anywhere in the two years and cut at both ends (customers shopped
    # before the data starts and go on after it ends), so the last weeks are as busy as the rest.
    span = np.minimum(N_DAYS, 60 * shopping_days + rng.exponential(700, n)).astype(np.int64)
    start = rng.integers(-(span // 2), N_DAYS - span // 2)
    lo, hi = np.clip(start, 0, N_DAYS - 1), np.clip(start + span, 0, N_DAYS - 1)
    cdf = np.concatenate([[0.0], np.cumsum(daily_volume())])
    cust = np.repeat(np.arange(n, dtype=np.int64), shopping_days)
    u = cdf[lo[cust]] + rng.random(len(cust)) * (cdf[hi[cust] + 1] - cdf[lo[cust]])
    # Fewer windows cover the first and last weeks than the middle ones; a monotone map of the
    # draws onto their ranks (each customer's days keep their order) restores the real volume
    # there, so the weeks a model is scored on are as busy as their month.
    rank = np.empty(len(u))
    rank[np.argsort(u, kind="stable")] = np.arange(len(u))
    u = (rank + rng.random(len(u))) / len(u)
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

    def __init__(
        self, rng: np.random.Generator, catalogue: Catalogue, customers: Customers, tastes: Tastes, behaviour: Behaviour
    ) -> None:
        self.rng, self.cat, self.cust, self.tastes, self.b = rng, catalogue, customers, tastes, behaviour
        n = len(customers.activity)
        self.memory = np.full((n, MEMORY), -1, dtype=np.int32)
        self.memory_day = np.zeros((n, MEMORY), dtype=np.int32)
        self.memory_next = np.zeros(n, dtype=np.int64)
        cat = catalogue
        # Per-article lifecycle constants.
        self.tau = np.maximum((cat.end - cat.launch) / 3.0, 7.0)
        self.partner_cdf = np.cumsum(PARTNER_P) / np.sum(PARTNER_P)

    def demand(self, day: int, on_sale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Demand of the articles on sale, (taste draws, per age segment): base popularity x
        launch ramp x fade-out x closing x season, times the trend bursts under way."""
        cat = self.cat
        age = day - cat.launch[on_sale]
        ramp = np.minimum(1.0, (age + 1) / 10.0)
        fade = 0.15 + 0.85 * np.exp(-age / self.tau[on_sale])
        closing = np.clip((cat.end[on_sale] - day) / 14.0, 0.2, 1.0)
        doy = (FIRST_DAY + timedelta(days=day)).timetuple().tm_yday
        season = np.exp(cat.season_amp[on_sale] * np.cos(2 * np.pi * (doy - cat.season_peak[on_sale]) / 365.25))
        base = cat.popularity[on_sale] * ramp * fade * closing * season
        x = np.maximum(day - cat.trend_start[on_sale], 0) / cat.trend_rise[on_sale]
        burst = cat.trend_amp[on_sale] * x * np.exp(1.0 - x)  # (n_on_sale, TREND_SLOTS)
        seg = cat.trend_segment[on_sale]
        everywhere = seg < 0
        taste = base * (1.0 + (burst * np.where(everywhere, 1.0, TREND_SPILL)).sum(axis=1))
        segments = np.stack(
            [
                base * (1.0 + (burst * np.where(everywhere | (seg == s), 1.0, TREND_SPILL)).sum(axis=1))
                for s in range(N_AGE_SEGMENTS)
            ]
        )
        return taste, segments

    def day(self, day: int, cust: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Articles, prices and channels of the rows of the baskets (cust, rows) on ``day``."""
        rng, cat, b = self.rng, self.cat, self.b
        on_sale = np.flatnonzero((cat.launch <= day) & (cat.end > day))
        taste, segments = self.demand(day, on_sale)
        # One cumulative table: a row per taste cluster, then a row per age segment.
        weights = np.vstack(
            [self.tastes.affinity[:, on_sale] * taste[None, :], self.tastes.segment_affinity[:, on_sale] * segments]
        )
        k = weights.shape[0]
        cdf = np.cumsum(weights, axis=1)
        cdf = (cdf / cdf[:, -1:] + np.arange(k)[:, None]).ravel()

        n_rows = int(rows.sum())
        basket = np.repeat(np.arange(len(cust)), rows)
        first_row = np.cumsum(rows) - rows
        pos = np.arange(n_rows) - first_row[basket]
        row_cust = cust[basket]
        cluster = np.where(rng.random(len(cust)) < b.primary_share, self.cust.primary[cust], self.cust.secondary[cust])
        n_clusters = k - N_AGE_SEGMENTS
        cluster = np.where(rng.random(len(cust)) < b.taste_share, cluster, n_clusters + self.cust.segment[cust])
        u = cluster[basket] + rng.random(n_rows) * 0.999999
        article = on_sale[np.minimum(np.searchsorted(cdf, u), len(cdf) - 1) % len(on_sale)]

        # From the customer's earlier purchases: pick one, keep it if recent enough, then use it
        # as it is (re-buy), through one of its partners, or through another of its colours.
        first = pos == 0
        back = np.minimum(rng.geometric(b.recent_pick, n_rows), MEMORY)  # 1 = the latest purchase
        slot = (self.memory_next[row_cust] - back) % MEMORY
        remembered = self.memory[row_cust, slot].astype(np.int64)
        age = day - self.memory_day[row_cust, slot]
        kept = (remembered >= 0) & (rng.random(n_rows) < np.maximum(np.exp(-age / b.recency_days), b.old_keep))
        remembered = np.maximum(remembered, 0)
        p_rebuy = np.where(first, b.rebuy[0], b.rebuy[1])
        p_partner = p_rebuy + np.where(first, b.partner[0], b.partner[1])
        p_colour = p_partner + np.where(first, b.colour[0], b.colour[1])
        kind = rng.random(n_rows)
        from_memory = np.where(
            kind < p_rebuy,
            remembered,
            np.where(kind < p_partner, self._partner_of(remembered, n_rows), self._other_colour(remembered, n_rows)),
        )
        use = kept & (kind < p_colour) & self._on_sale(from_memory, day)
        use &= (kind < p_partner) | (cat.variant_count[remembered] > 1)  # a one-colour code has no other
        article = np.where(use, from_memory, article)

        # Bought together: a partner or another colour of the basket's first article.
        anchor = article[first_row][basket]
        colour = (rng.random(n_rows) < b.together_colour) & (cat.variant_count[anchor] > 1)
        together = np.where(colour, self._other_colour(anchor, n_rows), self._partner_of(anchor, n_rows))
        is_together = ~first & (kind >= p_colour) & (kind < p_colour + b.together) & self._on_sale(together, day)
        article = np.where(is_together, together, article)
        extra = ~first & (kind >= 1.0 - b.extra_unit)
        # Extra units repeat the previous row: forward-fill from the last row that is not one.
        source = np.where(extra, 0, np.arange(n_rows))
        np.maximum.accumulate(source, out=source)
        article = article[source]
        price = self._prices(article, day)[source]  # extra units share their row's price
        channel = np.where(rng.random(len(cust)) < self.cust.online[cust], 2, 1)[basket].astype(np.int64)
        self._remember(row_cust, article, pos, rows[basket], day)
        return article, price, channel

    def _partner_of(self, article: np.ndarray, n: int) -> np.ndarray:
        j = np.minimum(np.searchsorted(self.partner_cdf, self.rng.random(n)), N_PARTNERS - 1)
        return self.cat.partners[article, j]

    def _other_colour(self, article: np.ndarray, n: int) -> np.ndarray:
        """Another colour variant of the article's product code (itself when it has only one)."""
        cat = self.cat
        count = cat.variant_count[article]
        step = 1 + (self.rng.random(n) * np.maximum(count - 1, 1)).astype(np.int64)
        return cat.variant_start[article] + (cat.variant_no[article] + step) % count

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

    def _remember(
        self, row_cust: np.ndarray, article: np.ndarray, pos: np.ndarray, basket_rows: np.ndarray, day: int
    ) -> None:
        """Write the day's rows into each customer's ring of MEMORY slots (the last MEMORY rows
        of a bigger basket), so every slot index is written at most once per customer."""
        keep = pos >= basket_rows - MEMORY
        c, a = row_cust[keep], article[keep]
        offset = pos[keep] - np.maximum(basket_rows[keep] - MEMORY, 0)
        slot = (self.memory_next[c] + offset) % MEMORY
        self.memory[c, slot] = a
        self.memory_day[c, slot] = day
        np.add.at(self.memory_next, c, 1)


def generate_transactions(
    rng: np.random.Generator,
    catalogue: Catalogue,
    customers: Customers,
    tastes: Tastes,
    n_rows: int,
    behaviour: Behaviour | None = None,
) -> Iterator[pa.Table]:
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


def _table(
    parts: list[tuple[np.ndarray, ...]], customer_ids: pa.Array, article_ids: pa.Array, dates: pa.Array
) -> pa.Table:
    d, c, a, p, ch = (np.concatenate(x) for x in zip(*parts, strict=True))
    return pa.table(
        {
            "t_dat": pc.take(dates, pa.array(d)),
            "customer_id": pc.take(customer_ids, pa.array(c)),
            "article_id": pc.take(article_ids, pa.array(a)),
            "price": pa.array(p, pa.float64()),
            "sales_channel_id": pa.array(ch, pa.int64()),
        }
    )


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
