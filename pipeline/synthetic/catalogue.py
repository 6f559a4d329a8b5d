"""The article catalogue: real H&M value sets, product codes with colour variants, and the
hidden per-article traits (launch, lifetime, base popularity, season, trend shocks, price,
bought-with partners) that drive sales."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.synthetic import texts
from pipeline.synthetic.scales import N_DAYS
from pipeline.synthetic.vocab_data import (
    APPEARANCES,
    COLOURS,
    DEPARTMENT_TYPES,
    DEPARTMENTS,
    NAME_STEMS,
    PRODUCT_TYPES,
)
from shared.data.schema import ARTICLE_COLUMNS as SCHEMA_ARTICLE_COLUMNS

# The public articles.csv's columns, in order (one list for the loaders and the generator).
ARTICLE_COLUMNS = list(SCHEMA_ARTICLE_COLUMNS)

# Typical shelf price (in the data set's pre-normalisation units, /590 afterwards) per product type.
TYPE_PRICE = {
    "T-shirt": 9.99,
    "Vest top": 7.99,
    "Top": 12.99,
    "Socks": 4.99,
    "Underwear bottom": 6.99,
    "Bra": 19.99,
    "Trousers": 24.99,
    "Dress": 29.99,
    "Sweater": 24.99,
    "Jacket": 44.99,
    "Coat": 69.99,
    "Blazer": 44.99,
    "Shirt": 24.99,
    "Blouse": 22.99,
    "Skirt": 22.99,
    "Shorts": 17.99,
    "Leggings/Tights": 12.99,
    "Hoodie": 24.99,
    "Cardigan": 24.99,
    "Boots": 49.99,
    "Sneakers": 34.99,
    "Bag": 24.99,
    "Earring": 7.99,
    "Necklace": 9.99,
    "Swimwear bottom": 12.99,
    "Bikini top": 17.99,
    "Swimsuit": 24.99,
    "Jumpsuit/Playsuit": 29.99,
    "Hat/beanie": 9.99,
    "Scarf": 14.99,
    "Belt": 12.99,
    "Sunglasses": 9.99,
    "Hair/alice band": 4.99,
}
INDEX_GROUP_PRICE = {"Ladieswear": 1.0, "Divided": 0.7, "Menswear": 1.1, "Baby/Children": 0.6, "Sport": 1.0}
SUMMER_TYPES = {
    "Shorts",
    "Swimwear bottom",
    "Bikini top",
    "Swimsuit",
    "Sandals",
    "Heeled sandals",
    "Dress",
    "Vest top",
    "Sunglasses",
    "Flip flop",
    "Sarong",
    "Swimwear set",
    "Hat/brim",
}
WINTER_TYPES = {
    "Sweater",
    "Jacket",
    "Coat",
    "Cardigan",
    "Hoodie",
    "Boots",
    "Beanie",
    "Hat/beanie",
    "Gloves",
    "Scarf",
    "Outdoor Waistcoat",
    "Outdoor overall",
    "Pyjama set",
}
PRICE_LEVEL = 0.88  # brings the price quantiles onto the real ones (p50 0.0254)
PRICE_SCALE = 590.0  # real prices are shelf prices divided by a constant; p50 ~ 14.99/590 = 0.0254
N_PARTNERS = 6
# How often each partner slot is the one chosen: the first partner dominates, so pairs are stable.
PARTNER_P = (0.65, 0.15, 0.08, 0.06, 0.04, 0.02)
# Trend shocks per product code: up to TREND_SLOTS bursts in its life, each with this probability;
# a burst multiplies demand by 1 + amplitude x (x e^(1-x)), x = days since its start / rise time,
# so demand peaks ``rise`` days after the start and fades over the next two or three weeks.
TREND_SLOTS = 2
TREND_P = 0.5
TREND_AMPLITUDE = (np.log(3.0), 0.6)  # lognormal (log median, sigma): peak lift ~3x demand
TREND_RISE = (4, 12)  # days from the start of a burst to its peak
N_AGE_SEGMENTS = 4  # customers.AGE_SEGMENTS: <25, 25-34, 35-49, 50+
TREND_GLOBAL = 0.05  # share of bursts that lift every age segment alike; the rest
# lift one segment fully and the others by TREND_SPILL
# Spread of base popularity per product code and per colour variant (log scale): the long tail.
POPULARITY_SIGMA = (0.5, 0.3)


@dataclass
class Catalogue:
    frame: pd.DataFrame  # articles.csv rows, all columns as strings, public column order
    code: np.ndarray  # product code per article
    dept: np.ndarray  # index into DEPARTMENTS
    ptype: np.ndarray  # index into PRODUCT_TYPES
    colour: np.ndarray  # index into COLOURS
    appearance: np.ndarray  # index into APPEARANCES
    index_group: np.ndarray  # index into INDEX_GROUPS
    launch: np.ndarray  # first day on sale (day 0 = 2018-09-20; negative = before the data starts)
    end: np.ndarray  # first day no longer on sale
    popularity: np.ndarray  # base popularity (long-tailed)
    season_peak: np.ndarray  # day of year of peak demand
    season_amp: np.ndarray  # 0 for all-year articles
    price_units: np.ndarray  # shelf price before normalisation
    partners: np.ndarray  # (n, N_PARTNERS) articles bought with it (same basket or next visits)
    variant_start: np.ndarray  # first article of its product code
    variant_count: np.ndarray  # colour variants of its product code
    variant_no: np.ndarray  # its position among them
    trend_start: np.ndarray  # (n, TREND_SLOTS) day a trend burst starts
    trend_rise: np.ndarray  # (n, TREND_SLOTS) days to the burst's peak
    trend_amp: np.ndarray  # (n, TREND_SLOTS) peak lift (0 = no burst)
    trend_segment: np.ndarray  # (n, TREND_SLOTS) age segment the burst lifts (-1 = all)

    def __len__(self) -> int:
        return len(self.code)


INDEX_GROUPS = sorted({d[5] for d in DEPARTMENTS})


def _weights(rows: list[tuple]) -> np.ndarray:
    w = np.array([r[-1] for r in rows], dtype=float)
    return w / w.sum()


def _names_and_descriptions(
    rng: np.random.Generator,
    n_codes: int,
    code_of: np.ndarray,
    variant_no: np.ndarray,
    type_names: np.ndarray,
    groups: np.ndarray,
    appearance: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Names: one stem per code; later variants sometimes carry " (1)" like real re-issues."""
    n_articles = len(code_of)
    code_names = texts.prod_names(rng, NAME_STEMS, type_names[np.searchsorted(code_of, np.arange(n_codes))])
    names = code_names[code_of].copy()
    suffix = (variant_no > 0) & (rng.random(n_articles) < 0.15)
    names[suffix] = [f"{n} (1)" for n in names[suffix]]
    app_names = np.array([APPEARANCES[a][1] for a in appearance], dtype=object)
    descs = texts.detail_descs(rng, type_names, groups, app_names)

    return names, descs


def _trend_bursts(
    rng: np.random.Generator, n_codes: int, code_launch: np.ndarray, code_end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Trend bursts per product code (all its colours trend together), inside its life:
    (start day, rise days, amplitude, age segment or -1 for everyone), [n_codes, TREND_SLOTS]."""
    has = rng.random((n_codes, TREND_SLOTS)) < TREND_P
    life = np.maximum(code_end - code_launch, 1)
    t_start = code_launch[:, None] + (rng.random((n_codes, TREND_SLOTS)) * np.minimum(life, 2 * N_DAYS)[:, None])
    t_amp = np.where(has, rng.lognormal(*TREND_AMPLITUDE, size=(n_codes, TREND_SLOTS)), 0.0)
    t_rise = rng.integers(TREND_RISE[0], TREND_RISE[1] + 1, size=(n_codes, TREND_SLOTS))
    t_seg = np.where(
        rng.random((n_codes, TREND_SLOTS)) < TREND_GLOBAL,
        -1,
        rng.integers(0, N_AGE_SEGMENTS, size=(n_codes, TREND_SLOTS)),
    )
    return t_start, t_rise, t_amp, t_seg


def build_catalogue(rng: np.random.Generator, n_articles: int) -> Catalogue:
    # Product codes carry 1..k colour variants (real: 105,542 articles over 47,224 codes).
    variants = 1 + rng.poisson(1.3, size=n_articles)
    n_codes = int(np.searchsorted(np.cumsum(variants), n_articles) + 1)
    variants = variants[:n_codes]
    variants[-1] -= variants.sum() - n_articles
    code_of = np.repeat(np.arange(n_codes), variants)
    variant_no = np.arange(n_articles) - np.repeat(np.cumsum(variants) - variants, variants)

    # Code-level traits: department, product type, launch and lifetime.
    dept_type = np.array([(d, t) for d, t, _ in DEPARTMENT_TYPES])
    pair = rng.choice(len(dept_type), size=n_codes, p=_weights(DEPARTMENT_TYPES))
    code_dept, code_type = dept_type[pair, 0], dept_type[pair, 1]
    pre_existing = rng.random(n_codes) < 0.35
    code_launch = np.where(pre_existing, -rng.integers(1, 400, n_codes), rng.integers(0, N_DAYS, n_codes))
    basics = rng.random(n_codes) < 0.08
    lifetime = np.where(basics, 5 * N_DAYS, np.clip(rng.lognormal(np.log(110), 0.6, n_codes), 21, 600))
    code_end = code_launch + lifetime.astype(np.int64)
    code_pop = rng.lognormal(0.0, POPULARITY_SIGMA[0], n_codes)
    # Newer product codes have higher numbers, as in the real catalogue.
    order = np.argsort(code_launch, kind="stable")
    code_numbers = np.empty(n_codes, dtype=np.int64)
    code_numbers[order] = np.sort(rng.choice(np.arange(108_775, 959_462), size=n_codes, replace=False))
    code_app = rng.choice(len(APPEARANCES), size=n_codes, p=_weights(APPEARANCES))

    colour = rng.choice(len(COLOURS), size=n_articles, p=_weights(COLOURS))
    appearance = np.where(
        rng.random(n_articles) < 0.8,
        code_app[code_of],
        rng.choice(len(APPEARANCES), size=n_articles, p=_weights(APPEARANCES)),
    )
    dept, ptype = code_dept[code_of], code_type[code_of]
    launch = code_launch[code_of] + np.where(variant_no > 0, rng.integers(0, 60, n_articles), 0)
    end = np.maximum(code_end[code_of], launch + 14)
    popularity = code_pop[code_of] * rng.lognormal(0.0, POPULARITY_SIGMA[1], n_articles)

    type_names = np.array([PRODUCT_TYPES[t][1] for t in ptype], dtype=object)
    groups = np.array([PRODUCT_TYPES[t][2] for t in ptype], dtype=object)
    season_peak = np.where(np.isin(type_names, list(WINTER_TYPES)), 355, 180).astype(np.int64)
    seasonal = np.isin(type_names, list(SUMMER_TYPES | WINTER_TYPES))
    season_amp = np.where(seasonal, 0.9, 0.0) * rng.uniform(0.6, 1.2, n_articles)
    ig_names = np.array([DEPARTMENTS[d][5] for d in dept], dtype=object)
    index_group = np.searchsorted(np.array(INDEX_GROUPS, dtype=object), ig_names)
    base_price = (
        PRICE_LEVEL
        * np.array([TYPE_PRICE.get(t, 14.99) for t in type_names])
        * np.array([INDEX_GROUP_PRICE.get(g, 1.0) for g in ig_names])
    )
    code_price = base_price[np.searchsorted(code_of, np.arange(n_codes))][code_of]
    price_units = snap_price(code_price * rng.lognormal(0.0, 0.3, n_codes)[code_of])

    names, descs = _names_and_descriptions(rng, n_codes, code_of, variant_no, type_names, groups, appearance)
    article_ids = code_numbers[code_of] * 1000 + 1 + variant_no
    frame = _frame(article_ids, code_numbers[code_of], names, ptype, appearance, colour, dept, descs)
    partners = _partners(rng, code_of, dept, launch)
    t_start, t_rise, t_amp, t_seg = _trend_bursts(rng, n_codes, code_launch, code_end)
    return Catalogue(
        frame,
        code_of,
        dept,
        ptype,
        colour,
        appearance,
        index_group,
        launch,
        end,
        popularity,
        season_peak,
        season_amp,
        price_units,
        partners,
        (np.cumsum(variants) - variants)[code_of],
        variants[code_of],
        variant_no,
        t_start.astype(np.int64)[code_of],
        t_rise[code_of].astype(np.int64),
        t_amp[code_of].astype(np.float32),
        t_seg[code_of].astype(np.int64),
    )


def snap_price(units: np.ndarray) -> np.ndarray:
    """Round to shelf price points ending in .99 or .49 (e.g. 14.99), at least 0.99."""
    return np.maximum(np.round(units * 2) / 2, 1.0) - 0.01


def _frame(
    article_ids: np.ndarray,
    codes: np.ndarray,
    names: np.ndarray,
    ptype: np.ndarray,
    appearance: np.ndarray,
    colour: np.ndarray,
    dept: np.ndarray,
    descs: np.ndarray,
) -> pd.DataFrame:
    def col(table: list[tuple], idx: np.ndarray, j: int) -> np.ndarray:
        return np.array([str(r[j]) for r in table], dtype=object)[idx]

    data = {
        "article_id": np.char.zfill(article_ids.astype(str), 10).astype(object),
        "product_code": codes.astype(str).astype(object),  # the public file writes it unpadded
        "prod_name": names,
        "product_type_no": col(PRODUCT_TYPES, ptype, 0),
        "product_type_name": col(PRODUCT_TYPES, ptype, 1),
        "product_group_name": col(PRODUCT_TYPES, ptype, 2),
        "graphical_appearance_no": col(APPEARANCES, appearance, 0),
        "graphical_appearance_name": col(APPEARANCES, appearance, 1),
    }
    for j, name in enumerate(ARTICLE_COLUMNS[8:14]):
        data[name] = col(COLOURS, colour, j)
    for j, name in enumerate(ARTICLE_COLUMNS[14:24]):
        data[name] = col(DEPARTMENTS, dept, j)
    data["detail_desc"] = descs
    return pd.DataFrame(data, columns=ARTICLE_COLUMNS)


def _partners(rng: np.random.Generator, code_of: np.ndarray, dept: np.ndarray, launch: np.ndarray) -> np.ndarray:
    """Each article's stable bought-with partners: articles of other product codes in its
    department launched around the same time (its collection), in a random order per article,
    so the strongest partner is not simply the neighbouring article id."""
    n = len(code_of)
    idx = np.arange(n)
    order = np.lexsort((launch, dept))
    pos = np.empty(n, dtype=np.int64)
    pos[order] = idx
    steps = np.array([-1, 1, -2, 2, -3, 3, -4, 4, -5, 5, -6, 6])
    cand = np.empty((n, len(steps)), dtype=np.int64)
    for j, step in enumerate(steps):
        neighbour = order[np.clip(pos + step, 0, n - 1)]
        other = order[np.clip(pos - step, 0, n - 1)]
        cand[:, j] = np.where(dept[neighbour] == dept, neighbour, other)
    # Prefer candidates of another product code (colours are their own signal), then shuffle.
    key = (code_of[cand] == code_of[:, None]) * 2.0 + rng.random(cand.shape)
    pick = np.argsort(key, axis=1)[:, :N_PARTNERS]
    partners = np.take_along_axis(cand, pick, axis=1)
    return np.where(partners == idx[:, None], order[np.clip(pos + 7, 0, n - 1)][:, None], partners)
