"""Stage one: every candidate source, merged and tagged, in ONE function for every path.

Training weeks of the ranker, ``hmrec evaluate``, the batch file (``hmrec infer``) and the
``/candidates`` route all call :func:`stage_one_frame` with :class:`StageOneTables` built strictly
before a cutoff, so the list a shopper is served is the list that was scored.

The sources (the H&M competition's winners built their candidates this way: many cheap
sources, one strong ranker; learned retrieval alone is weak on the real data):

- ``repurchase``: the customer's own most recent distinct articles over the whole history,
  score ``exp(-days_ago / half_life) * (1 + log(times bought))``;
- ``copurchase``: articles bought with (same day) or soon after (within ``pair_window_days``)
  the customer's recent purchases by other customers, from a top-N neighbour table per
  article; score = sum over the customer's seeds of ``P(b | a) * recency weight of a``;
- ``variant``: other colours of the product codes the customer bought recently (only those
  still selling), score = recency weight of the seed;
- ``trending``: what sells now in the customer's age band, weighted by last week's growth
  (``sales_7d * min(growth_cap, (sales_7d + 1) / (sales_prev_7d + 1))``, smoothed towards the
  shop's list so thin bands still have one); score normalised to the band's best = 1;
- ``popular``: last week's global best sellers (``shared.baselines.popular_articles``), score
  ``1 - rank / n``: the strong baselines' second half is always in the list;
- ``two_tower``: the two-tower's nearest neighbours among articles still selling (no cosine
  threshold by default; ``threshold`` keeps the old behaviour as an option).

Every candidate carries the two-tower cosine as ``score`` (whatever source found it) and
one ``src_<source>`` column per source (0 when that source did not propose it). The list is
ordered by :func:`stage_one_order` (repurchase, variant, co-purchase, two-tower, trending,
popular; each by its own score), which is also the order served when the ranker is down.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared.age_bands import BASELINE_BANDS, baseline_band_index
from shared.baselines import TREND_GROWTH_CAP, TREND_SHOP_WEIGHT, trend_scores
from shared.contract.candidate_sources import SOURCE_COLUMNS
from shared.contract.schemas import CANDIDATE_SOURCES
from shared.encode import IdLookup, day_number, day_numbers, distinct_sorted, positions, vocabulary
from shared.group_ranks import rank_within

# Order of the served list without a ranker, and the tag (``source``) of a candidate that
# several sources found: the first of these that proposed it.
SOURCE_PRIORITY = ("repurchase", "variant", "copurchase", "two_tower", "trending", "popular")
TABLES_SUBDIR = "stage_one"


@dataclass(frozen=True)
class StageOneConfig:
    """How many candidates each source gives. Defaults measured on `small` (docs/candidate.md)."""

    two_tower_k: int = 100
    threshold: float | None = None  # cosine threshold on the two-tower source (None: off)
    not_sold_weeks: int = 8  # two-tower and variants: only articles sold in these weeks
    repurchase_k: int = 20
    repurchase_half_life_days: float = 30.0
    seeds: int = 10  # recent distinct purchases that seed co-purchase and variants
    copurchase_k: int = 30
    variant_k: int = 10
    trending_k: int = 30
    popular_k: int = 12

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> StageOneConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (values or {}).items() if k in known})


@dataclass(frozen=True)
class TableConfig:
    """How the tables are built (their windows), stored with them."""

    history_per_customer: int = 50  # recent distinct articles kept per customer
    pair_weeks: int = 12  # co-purchase pairs from this many weeks before the cutoff
    pair_window_days: int = 7  # "bought next": within this many days after
    pair_lookahead: int = 8  # each purchase pairs with this many later ones of the customer
    neighbours: int = 20  # co-purchase neighbours kept per article
    trend_growth_cap: float = TREND_GROWTH_CAP
    trend_shop_weight: float = TREND_SHOP_WEIGHT  # smoothing of thin age bands towards the shop's trend
    trend_list: int = 200  # trending articles kept per band


@dataclass
class StageOneTables:
    """Everything the non-learned sources need, computed strictly before ``cutoff``.

    Articles are positions in ``article_ids``; per-customer and per-article lists are CSR
    arrays (``*_ptr`` offsets of length n + 1).
    """

    cutoff: date
    config: TableConfig
    article_ids: np.ndarray  # str, sorted
    customer_ids: np.ndarray  # str, sorted: customers with a purchase before the cutoff
    customer_band: np.ndarray  # int8 per customer_ids row, -1 unknown age
    band_of_id: dict[str, int]  # every customer in the customer table -> band (-1 unknown)
    hist_ptr: np.ndarray
    hist_article: np.ndarray  # newest first
    hist_days_ago: np.ndarray  # days between the last purchase and the cutoff (>= 1)
    hist_count: np.ndarray
    nb_ptr: np.ndarray
    nb_article: np.ndarray
    nb_weight: np.ndarray  # P(b bought with/after a | a), best first
    code_ptr: np.ndarray  # per article: other articles of its product code still selling
    code_article: np.ndarray
    selling: np.ndarray  # bool per article: sold within not-sold weeks (8 by default)
    trend_article: np.ndarray  # [n_bands + 1, trend_list] (last row = shop), -1 padded
    trend_score: np.ndarray  # same shape, normalised to each row's best = 1
    popular: np.ndarray  # last week's global best sellers (positions), best first

    def __post_init__(self) -> None:
        self._customers = IdLookup(self.customer_ids)
        self._articles = IdLookup(self.article_ids)

    # --- lookups -----------------------------------------------------------------------------
    def customer_rows(self, customer_ids: np.ndarray) -> np.ndarray:
        """Row in ``customer_ids`` of each id, -1 for a customer without history."""
        return self._customers(customer_ids)

    def article_positions(self, article_ids: list[str] | np.ndarray) -> np.ndarray:
        return self._articles(article_ids)

    def bands(self, customer_ids: np.ndarray) -> np.ndarray:
        return np.array([self.band_of_id.get(str(c), -1) for c in customer_ids], dtype=np.int8)

    # --- persistence --------------------------------------------------------------------------
    ARRAYS = (
        "article_ids",
        "customer_ids",
        "customer_band",
        "hist_ptr",
        "hist_article",
        "hist_days_ago",
        "hist_count",
        "nb_ptr",
        "nb_article",
        "nb_weight",
        "code_ptr",
        "code_article",
        "selling",
        "trend_article",
        "trend_score",
        "popular",
    )

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {n: getattr(self, n) for n in self.ARRAYS}
        arrays["article_ids"] = arrays["article_ids"].astype("U10")
        arrays["customer_ids"] = arrays["customer_ids"].astype("U64")
        np.savez(folder / "tables.npz", **arrays)
        bands = pd.DataFrame({"customer_id": list(self.band_of_id), "band": list(self.band_of_id.values())})
        bands.to_parquet(folder / "customer_bands.parquet", index=False)
        import json

        (folder / "tables.json").write_text(
            json.dumps({"cutoff": self.cutoff.isoformat(), "config": asdict(self.config)}, indent=2)
        )

    @classmethod
    def load(cls, folder: Path) -> StageOneTables:
        import json

        meta = json.loads((folder / "tables.json").read_text())
        with np.load(folder / "tables.npz") as z:
            arrays = {n: z[n] for n in cls.ARRAYS}
        arrays["article_ids"] = arrays["article_ids"].astype(object)
        arrays["customer_ids"] = arrays["customer_ids"].astype(object)
        bands = pd.read_parquet(folder / "customer_bands.parquet")
        band_of_id = dict(zip(bands["customer_id"].astype(str), bands["band"].astype(int), strict=True))
        return cls(
            cutoff=date.fromisoformat(meta["cutoff"]),
            config=TableConfig(**meta["config"]),
            band_of_id=band_of_id,
            **arrays,
        )


# --- building the tables ------------------------------------------------------------------------


def _csr(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Offsets for rows already sorted by ``groups``."""
    return np.concatenate([[0], np.cumsum(np.bincount(groups, minlength=n_groups))]).astype(np.int64)


def build_tables(
    transactions: pd.DataFrame,
    customers: pd.DataFrame,
    articles: pd.DataFrame,
    cutoff: date | pd.Timestamp,
    config: TableConfig | None = None,
    not_sold_weeks: int = 8,
) -> StageOneTables:
    """The tables as of ``cutoff``: only rows with ``t_dat < cutoff`` are read."""
    cfg = config or TableConfig()
    cut = day_number(cutoff)
    article_ids = np.array(sorted(set(articles["article_id"].astype(str))), dtype=object)
    days_all = day_numbers(transactions["t_dat"])
    art_all = positions(transactions["article_id"], vocabulary(article_ids))
    before = (days_all < cut) & (art_all >= 0)
    keep = np.flatnonzero(before)
    days, art = days_all[keep], art_all[keep].astype(np.int64)
    del days_all, art_all
    # Integer codes of the whole id column, then the rows kept: no 31.8M Python strings.
    customer_ids = distinct_sorted(transactions["customer_id"], where=before)
    cust = positions(transactions["customer_id"], vocabulary(customer_ids))[keep].astype(np.int64)
    n_a, n_c = len(article_ids), len(customer_ids)

    ages = customers.drop_duplicates("customer_id")
    band_all = baseline_band_index(pd.to_numeric(ages["age"], errors="coerce").to_numpy())
    band_of_id = dict(zip(ages["customer_id"].astype(str), band_all.astype(int), strict=True))
    customer_band = np.array([band_of_id.get(c, -1) for c in customer_ids], dtype=np.int8)

    hist = _history(cust, art, days, cut, n_a, n_c, cfg.history_per_customer)
    nb = _neighbours(cust, art, days, cut, n_a, cfg)
    sold_since = cut - 7 * not_sold_weeks if not_sold_weeks else -(10**9)
    selling = np.zeros(n_a, dtype=bool)
    selling[art[days >= sold_since]] = True
    code = _codes(articles, article_ids)
    code_ptr, code_article = _variants(code, selling)
    trend_article, trend_score = _trending(art, days, cust, customer_band, cut, n_a, cfg)
    week = days >= cut - 7
    counts = np.bincount(art[week], minlength=n_a) if week.any() else np.bincount(art, minlength=n_a)
    popular = np.lexsort((np.arange(n_a), -counts))[:1000]
    popular = popular[counts[popular] > 0]
    return StageOneTables(
        cutoff=pd.Timestamp(cutoff).date(),
        config=cfg,
        article_ids=article_ids,
        customer_ids=customer_ids,
        customer_band=customer_band,
        band_of_id=band_of_id,
        **hist,
        **nb,
        code_ptr=code_ptr,
        code_article=code_article,
        selling=selling,
        trend_article=trend_article,
        trend_score=trend_score,
        popular=popular.astype(np.int64),
    )


def _history(
    cust: np.ndarray, art: np.ndarray, days: np.ndarray, cut: int, n_a: int, n_c: int, keep_n: int
) -> dict[str, np.ndarray]:
    """Per customer: distinct articles, newest last purchase first (ties: more often, then position)."""
    key = cust * n_a + art
    order = np.lexsort((-days, key))
    key_sorted = key[order]
    first = np.r_[True, key_sorted[1:] != key_sorted[:-1]]
    uniq = key_sorted[first]
    last_day = days[order][first]
    count = np.diff(np.r_[np.flatnonzero(first), len(key_sorted)])
    c, a = uniq // n_a, uniq % n_a
    o = np.lexsort((a, -count, -last_day, c))
    c, a, last_day, count = c[o], a[o], last_day[o], count[o]
    kept = rank_within(c) < keep_n
    c, a, last_day, count = c[kept], a[kept], last_day[kept], count[kept]
    return {
        "hist_ptr": _csr(c, n_c),
        "hist_article": a.astype(np.int32),
        "hist_days_ago": (cut - last_day).astype(np.int32),
        "hist_count": count.astype(np.int32),
    }


def _neighbours(
    cust: np.ndarray, art: np.ndarray, days: np.ndarray, cut: int, n_a: int, cfg: TableConfig
) -> dict[str, np.ndarray]:
    """Top-N co-purchase neighbours per article from the last ``pair_weeks`` weeks: b counts for
    a when one customer bought b the same day as a or within ``pair_window_days`` after it."""
    recent = days >= cut - 7 * cfg.pair_weeks
    c, a, d = cust[recent], art[recent], days[recent]
    # Distinct (customer, day, article): several units of one article are one purchase.
    key = np.unique((c * 100_000 + (d - d.min() if len(d) else d)) * n_a + a)
    a = key % n_a
    cd = key // n_a
    c, d = cd // 100_000, cd % 100_000
    src, dst = [], []
    for j in range(1, cfg.pair_lookahead + 1):
        ok = (c[j:] == c[:-j]) & (d[j:] - d[:-j] <= cfg.pair_window_days) & (a[j:] != a[:-j])
        first, later = a[:-j][ok], a[j:][ok]
        same_day = d[j:][ok] == d[:-j][ok]
        src += [first, later[same_day]]  # a -> b (b same day or after); same day counts both ways
        dst += [later, first[same_day]]
    if not src or not sum(len(s) for s in src):
        empty = np.zeros(0, dtype=np.int32)
        return {"nb_ptr": np.zeros(n_a + 1, dtype=np.int64), "nb_article": empty, "nb_weight": empty.astype(np.float32)}
    s, t = np.concatenate(src), np.concatenate(dst)
    pair, count = np.unique(s * n_a + t, return_counts=True)
    s, t = pair // n_a, pair % n_a
    buyers = np.bincount(a, minlength=n_a)  # purchases of a in the window
    weight = count / np.maximum(buyers[s], 1)
    o = np.lexsort((t, -weight, s))
    s, t, weight = s[o], t[o], weight[o]
    kept = rank_within(s) < cfg.neighbours
    s, t, weight = s[kept], t[kept], weight[kept]
    return {"nb_ptr": _csr(s, n_a), "nb_article": t.astype(np.int32), "nb_weight": weight.astype(np.float32)}


def _codes(articles: pd.DataFrame, article_ids: np.ndarray) -> np.ndarray:
    """product_code per article position (the first 7 digits of the id when the column is absent)."""
    a = articles.drop_duplicates("article_id").set_index(articles["article_id"].drop_duplicates().astype(str))
    if "product_code" in a:
        raw = pd.to_numeric(a["product_code"].reindex(article_ids), errors="coerce")
        fallback = pd.Series([int(x[:7]) for x in article_ids], index=raw.index)
        return raw.fillna(fallback).to_numpy(np.int64)
    return np.array([int(x[:7]) for x in article_ids], dtype=np.int64)


def _variants(code: np.ndarray, selling: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per article, the other articles of its product code that still sell."""
    n = len(code)
    order = np.lexsort((np.arange(n), code))
    sorted_code = order_code = code[order]
    starts = np.searchsorted(sorted_code, order_code, side="left")
    ends = np.searchsorted(sorted_code, order_code, side="right")
    lo, hi = np.empty(n, np.int64), np.empty(n, np.int64)
    lo[order], hi[order] = starts, ends
    sizes = hi - lo
    owner = np.repeat(np.arange(n), sizes)
    member = order[np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)])] if n else owner
    ok = (member != owner) & selling[member]
    owner, member = owner[ok], member[ok]
    return _csr(owner, n), member.astype(np.int32)


def _trending(
    art: np.ndarray, days: np.ndarray, cust: np.ndarray, customer_band: np.ndarray, cut: int, n_a: int, cfg: TableConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Per age band (and the shop, last row): articles by last week's growth-weighted sales
    (shared.baselines.trend_scores, the ``age_trending`` baseline's definition)."""
    n_b = len(BASELINE_BANDS)
    recent = days >= cut - 14
    art, days, band = art[recent], days[recent], customer_band[cust[recent]]
    out_a = np.full((n_b + 1, cfg.trend_list), -1, dtype=np.int32)
    out_s = np.zeros((n_b + 1, cfg.trend_list), dtype=np.float32)
    shop = trend_scores(art, days, cut, n_a, cfg.trend_growth_cap)
    for b in range(n_b + 1):
        mine = band == b
        s = (
            shop
            if b == n_b
            else (trend_scores(art[mine], days[mine], cut, n_a, cfg.trend_growth_cap) + cfg.trend_shop_weight * shop)
        )
        top = np.lexsort((np.arange(n_a), -s))[: cfg.trend_list]
        top = top[s[top] > 0]
        out_a[b, : len(top)] = top
        if len(top):
            out_s[b, : len(top)] = s[top] / s[top[0]]
    return out_a, out_s


# --- the candidates ---------------------------------------------------------------------------


@dataclass
class SourceRows:
    """Candidates of one source: (query row, article position, source score)."""

    row: np.ndarray
    article: np.ndarray
    value: np.ndarray


def _expand(ptr: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every CSR entry of every key: (position in ``keys`` it belongs to, its index in the CSR
    arrays), in key order; a key of -1 has none.

    e.g. ptr [0, 2, 3] (key 0 owns entries 0-1, key 1 entry 2), keys [1, -1, 0] -> ([0, 2, 2], [2, 0, 1])
    """
    safe = np.maximum(keys, 0)
    lens = np.where(keys >= 0, ptr[safe + 1] - ptr[safe], 0)
    owner = np.repeat(np.arange(len(keys)), lens)
    return owner, np.repeat(ptr[safe], lens) + rank_within(owner)


def _history_of(
    tables: StageOneTables, rows: np.ndarray, recent: list[list[str]] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(query row, article, days ago, count) of each query's history, newest first per query.

    ``recent[i]``: articles the caller says query ``i`` bought just now (a session, or the
    ``recent_article_ids`` of a request): they come first, as bought today (days ago 0)."""
    q, idx = _expand(tables.hist_ptr, rows)
    a = tables.hist_article[idx].astype(np.int64)
    ago = tables.hist_days_ago[idx].astype(np.float64)
    cnt = tables.hist_count[idx].astype(np.float64)
    if recent and any(recent):
        extra_q = np.concatenate([np.full(len(r), i) for i, r in enumerate(recent)]).astype(np.int64)
        extra_a = tables.article_positions([x for r in recent for x in r]).astype(np.int64)
        ok = extra_a >= 0
        extra_q, extra_a = extra_q[ok], extra_a[ok]
        q = np.concatenate([extra_q, q])
        a = np.concatenate([extra_a, a])
        ago = np.concatenate([np.zeros(len(extra_q)), ago])
        cnt = np.concatenate([np.ones(len(extra_q)), cnt])
        # One entry per (query, article): the newest (recent ones come first, stable sort keeps them).
        o = np.lexsort((ago, q))
        q, a, ago, cnt = q[o], a[o], ago[o], cnt[o]
        key = q * len(tables.article_ids) + a
        _, first = np.unique(key, return_index=True)
        first.sort()
        q, a, ago, cnt = q[first], a[first], ago[first], cnt[first]
    return q, a, ago, cnt


def _top_per_query(src: SourceRows, k: int) -> SourceRows:
    if not len(src.row) or k <= 0:
        return SourceRows(src.row[:0], src.article[:0], src.value[:0])
    o = np.lexsort((src.article, -src.value, src.row))
    row, article, value = src.row[o], src.article[o], src.value[o]
    kept = rank_within(row) < k
    return SourceRows(row[kept], article[kept], value[kept])


def _sum_by_pair(row: np.ndarray, article: np.ndarray, value: np.ndarray, n_a: int) -> SourceRows:
    key, inverse = np.unique(row * n_a + article, return_inverse=True)
    total = np.bincount(inverse, weights=value, minlength=len(key))
    return SourceRows(key // n_a, key % n_a, total)


def source_rows(
    tables: StageOneTables, customer_ids: np.ndarray, config: StageOneConfig, recent: list[list[str]] | None = None
) -> dict[str, SourceRows]:
    """The non-learned sources for the queries ``customer_ids`` (one row each)."""
    n_a = len(tables.article_ids)
    rows = tables.customer_rows(customer_ids)
    q, a, ago, cnt = _history_of(tables, rows, recent)
    recency = np.exp(-ago / config.repurchase_half_life_days)
    out = {"repurchase": _top_per_query(SourceRows(q, a, recency * (1.0 + np.log(cnt))), config.repurchase_k)}

    is_seed = rank_within(q) < config.seeds if len(q) else np.zeros(0, dtype=bool)
    sq, sa, sw = q[is_seed], a[is_seed], recency[is_seed]
    seed, entry = _expand(tables.nb_ptr, sa)
    co = _sum_by_pair(sq[seed], tables.nb_article[entry].astype(np.int64), sw[seed] * tables.nb_weight[entry], n_a)
    out["copurchase"] = _top_per_query(co, config.copurchase_k)

    seed, entry = _expand(tables.code_ptr, sa)
    variants = _sum_by_pair(sq[seed], tables.code_article[entry].astype(np.int64), sw[seed], n_a)
    out["variant"] = _top_per_query(variants, config.variant_k)

    band = np.where(rows >= 0, tables.customer_band[np.maximum(rows, 0)], tables.bands(customer_ids))
    band_row = np.where(band >= 0, band, len(BASELINE_BANDS)).astype(np.int64)
    k = min(config.trending_k, tables.trend_article.shape[1])
    ta, ts = tables.trend_article[band_row, :k], tables.trend_score[band_row, :k]
    tq = np.repeat(np.arange(len(rows)), k)
    ok = ta.ravel() >= 0
    out["trending"] = SourceRows(tq[ok], ta.ravel()[ok].astype(np.int64), ts.ravel()[ok].astype(np.float64))

    pop = tables.popular[: config.popular_k]
    out["popular"] = SourceRows(
        np.repeat(np.arange(len(rows)), len(pop)),
        np.tile(pop, len(rows)),
        np.tile(1.0 - np.arange(len(pop)) / max(len(pop), 1), len(rows)),
    )
    return out


def merge_sources(
    sources: dict[str, SourceRows], n_queries: int, n_articles: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query row, article, [n, len(CANDIDATE_SOURCES)] source scores), one row per distinct pair."""
    parts = [(CANDIDATE_SOURCES.index(name), s) for name, s in sources.items() if len(s.row)]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, len(CANDIDATE_SOURCES)), np.float32)
    keys = np.concatenate([s.row * n_articles + s.article for _, s in parts])
    uniq, inverse = np.unique(keys, return_inverse=True)
    values = np.zeros((len(uniq), len(CANDIDATE_SOURCES)), dtype=np.float32)
    start = 0
    for col, s in parts:
        # A source gives each pair at most once; a zero score still marks the pair as found.
        values[inverse[start : start + len(s.row)], col] = np.maximum(s.value, 1e-6)
        start += len(s.row)
    return uniq // n_articles, uniq % n_articles, values


def stage_one_order(row: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Permutation: per query, candidates by their first source in SOURCE_PRIORITY, then by
    that source's score (the order served without a ranker)."""
    cols = [CANDIDATE_SOURCES.index(s) for s in SOURCE_PRIORITY]
    found = values[:, cols] > 0
    first = np.where(found.any(axis=1), found.argmax(axis=1), len(cols))
    own = values[np.arange(len(values)), np.array(cols)[np.minimum(first, len(cols) - 1)]]
    return np.lexsort((-own, first, row))


@dataclass
class StageOneLists:
    """Stage one as arrays, in stage-one order: query row, article position, two-tower cosine,
    [n, len(CANDIDATE_SOURCES)] source scores (the service answers from these directly)."""

    ids: np.ndarray
    row: np.ndarray
    article: np.ndarray
    cosine: np.ndarray
    values: np.ndarray


def stage_one_lists(
    tables: StageOneTables,
    two_tower: Any,
    customer_ids: list[str] | np.ndarray,
    config: StageOneConfig | None = None,
    recent: list[list[str]] | None = None,
) -> StageOneLists:
    """Every source for ``customer_ids``, merged, deduplicated and ordered (see :func:`stage_one_frame`)."""
    config = config or StageOneConfig()
    ids = np.asarray([str(c) for c in customer_ids], dtype=object)
    sources = source_rows(tables, ids, config, recent)
    queries = None
    if two_tower is not None:
        queries = two_tower.queries(ids, recent)
        sources["two_tower"] = two_tower.nearest(queries, config, tables)
    row, art, values = merge_sources(sources, len(ids), len(tables.article_ids))
    order = stage_one_order(row, values)
    row, art, values = row[order], art[order], values[order]
    cosine = two_tower.cosine(queries, row, art, tables) if two_tower is not None else np.zeros(len(row), np.float32)
    return StageOneLists(ids, row, art, np.asarray(cosine, dtype=np.float32), values)


def stage_one_frame(
    tables: StageOneTables,
    two_tower: Any,
    customer_ids: list[str] | np.ndarray,
    config: StageOneConfig | None = None,
    recent: list[list[str]] | None = None,
) -> pd.DataFrame:
    """The candidates of ``customer_ids``: customer_id, article_id, score (two-tower cosine),
    source, rank (stage-one order, 1 = first), one ``src_<source>`` column per source.

    ``two_tower`` is a :class:`~services.candidate.two_tower_source.TwoTowerSource` (or None:
    that source is skipped and ``score`` is 0).
    """
    return lists_frame(tables, stage_one_lists(tables, two_tower, customer_ids, config, recent))


def first_source(values: np.ndarray) -> np.ndarray:
    """Index into SOURCE_PRIORITY of each candidate's tag: the first source that proposed it."""
    cols = [CANDIDATE_SOURCES.index(s) for s in SOURCE_PRIORITY]
    return (values[:, cols] > 0).argmax(axis=1) if len(values) else np.zeros(0, np.int64)


def list_ranks(lists: StageOneLists) -> np.ndarray:
    """int32 stage-one rank of each candidate within its query (1 = first)."""
    return (rank_within(lists.row) + 1).astype(np.int32)


def lists_frame(tables: StageOneTables, lists: StageOneLists) -> pd.DataFrame:
    """:class:`StageOneLists` as the candidate frame :func:`stage_one_frame` returns."""
    frame = pd.DataFrame(
        {
            "customer_id": lists.ids[lists.row].astype(str),
            "article_id": tables.article_ids[lists.article].astype(str),
            "score": lists.cosine,
            "source": np.array(SOURCE_PRIORITY, dtype=object)[first_source(lists.values)].astype(str),
            "rank": list_ranks(lists),
        }
    )
    for j, name in enumerate(SOURCE_COLUMNS):
        frame[name] = lists.values[:, j]
    return frame
