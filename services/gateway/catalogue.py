"""What the gateway knows about the shop itself: article details, customers, popular items.

Loaded once at startup from the data folder (``shared.data``), kept as compact columns:

- articles: name, attributes (as category codes, so filters are integer set lookups), mean
  transaction price, whether a photo exists;
- customers: ids sorted as fixed-width bytes (prefix search is a binary search; 1.37M ids
  take 88 MB this way instead of ~150 MB of Python strings), age, purchase count;
- popular items per age band over the last ``popular_weeks`` weeks before the end of the
  data: the fallback when the candidate service is down.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared.age_bands import UNKNOWN_BAND, decade_label
from shared.contract.schemas import FILTER_COLUMNS, SearchFilters

log = logging.getLogger(__name__)

SAMPLE_MAX = 100  # customers the sample can return
ALL_BAND = "all"


def article_image_relpath(article_id: str) -> str:
    """The Kaggle layout: ``images/<first 3 digits>/<10-digit id>.jpg``."""
    return f"{article_id[:3]}/{article_id}.jpg"


@dataclass
class Catalogue:
    version: str
    article_ids: list[str]
    names: list[str]
    descriptions: list[str]
    # column -> (codes per article, categories); categories[codes[i]] is article i's value.
    attributes: dict[str, tuple[np.ndarray, list[str]]]
    price: np.ndarray  # float32, NaN = never sold
    has_image: np.ndarray  # bool
    customer_ids: np.ndarray  # sorted, dtype S64
    customer_age: np.ndarray  # float32, NaN = unknown
    customer_purchases: np.ndarray  # int32
    popular: dict[str, list[str]]  # age band (and "all") -> article ids, most bought first
    images_dir: Path
    row_of: dict[str, int] = field(default_factory=dict)
    facets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.row_of = {aid: i for i, aid in enumerate(self.article_ids)}
        self.facets = self._facets()
        # Most purchases first, ties by id: sorted once here, not per request (1.37M rows).
        order = np.lexsort((np.arange(len(self.customer_purchases)), -self.customer_purchases))
        self._sample_rows = order[:SAMPLE_MAX]

    # --- articles ----------------------------------------------------------------------------

    def __contains__(self, article_id: str) -> bool:
        return article_id in self.row_of

    def _value(self, column: str, row: int) -> str:
        codes, categories = self.attributes[column]
        return categories[codes[row]]

    def card(self, article_id: str, score: float | None = None) -> dict[str, Any] | None:
        """What a product tile shows; None for an article the catalogue does not have."""
        row = self.row_of.get(article_id)
        if row is None:
            return None
        price = float(self.price[row])
        return {
            "article_id": article_id,
            "name": self.names[row],
            "product_type": self._value("product_type_name", row),
            "product_group": self._value("product_group_name", row),
            "colour": self._value("colour_group_name", row),
            "perceived_colour": self._value("perceived_colour_master_name", row),
            "department": self._value("department_name", row),
            "index_group": self._value("index_group_name", row),
            "price": None if math.isnan(price) else round(price, 4),
            "image_url": f"/articles/{article_id}/image" if self.has_image[row] else None,
            "score": score,
        }

    def detail(self, article_id: str) -> dict[str, Any] | None:
        card = self.card(article_id)
        if card is None:
            return None
        row = self.row_of[article_id]
        card.pop("score")
        card["attributes"] = {col: self._value(col, row) for col in self.attributes}
        card["description"] = self.descriptions[row]
        return card

    def image_path(self, article_id: str) -> Path | None:
        """The photo of a known article. ``article_id`` must already be validated as 10 digits."""
        row = self.row_of.get(article_id)
        if row is None or not self.has_image[row]:
            return None
        return self.images_dir / article_image_relpath(article_id)

    def compile_filter(self, filters: SearchFilters | None) -> Callable[[str], bool] | None:
        """A predicate on article ids for ``filters`` (None when nothing is filtered).

        Each attribute list means "any of these values"; attributes combine with AND; the
        price range applies to the mean transaction price (articles never sold fail it).
        Unknown articles never match.
        """
        if filters is None:
            return None
        allowed: list[tuple[np.ndarray, frozenset[int]]] = []
        for column in FILTER_COLUMNS:
            values = getattr(filters, column)
            if not values:
                continue
            codes, categories = self.attributes[column]
            wanted = set(values)
            allowed.append((codes, frozenset(i for i, c in enumerate(categories) if c in wanted)))
        low, high = filters.price_min, filters.price_max
        if not allowed and low is None and high is None:
            return None
        row_of, price = self.row_of, self.price

        def matches(article_id: str) -> bool:
            row = row_of.get(article_id)
            if row is None:
                return False
            for codes, ok in allowed:
                if codes[row] not in ok:
                    return False
            if low is not None or high is not None:
                p = price[row]
                if math.isnan(p) or (low is not None and p < low) or (high is not None and p > high):
                    return False
            return True

        return matches

    def _facets(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for column, (codes, categories) in self.attributes.items():
            if column not in FILTER_COLUMNS:
                continue
            counts = np.bincount(codes, minlength=len(categories))
            pairs = [(categories[i], int(n)) for i, n in enumerate(counts) if n > 0 and categories[i]]
            pairs.sort(key=lambda p: (-p[1], p[0]))
            out[column] = [{"value": v, "count": n} for v, n in pairs]
        return out

    def price_range(self) -> dict[str, float | None]:
        known = self.price[~np.isnan(self.price)]
        if known.size == 0:
            return {"min": None, "max": None}
        return {"min": round(float(known.min()), 4), "max": round(float(known.max()), 4)}

    # --- customers ---------------------------------------------------------------------------

    def _customer_row(self, customer_id: str) -> int | None:
        key = customer_id.encode()
        i = int(np.searchsorted(self.customer_ids, key))
        if i < len(self.customer_ids) and self.customer_ids[i] == key:
            return i
        return None

    def customer_band(self, customer_id: str) -> str:
        row = self._customer_row(customer_id)
        return decade_label(None if row is None else float(self.customer_age[row]))

    def _customer(self, row: int) -> dict[str, Any]:
        age = float(self.customer_age[row])
        return {
            "customer_id": self.customer_ids[row].decode(),
            "age": None if math.isnan(age) else int(age),
            "age_band": decade_label(age),
            "purchases": int(self.customer_purchases[row]),
        }

    def customers_with_prefix(self, prefix: str, limit: int) -> list[dict[str, Any]]:
        """Customers whose id starts with ``prefix`` (lowercase hex), in id order."""
        key = prefix.encode()
        start = int(np.searchsorted(self.customer_ids, key, side="left"))
        out = []
        for row in range(start, min(start + limit, len(self.customer_ids))):
            if not self.customer_ids[row].startswith(key):
                break
            out.append(self._customer(row))
        return out

    def sample_customers(self, limit: int) -> list[dict[str, Any]]:
        """The most active customers first: their feeds show what personalisation does."""
        return [self._customer(int(row)) for row in self._sample_rows[:limit]]

    def popular_for(self, customer_id: str) -> tuple[str, list[str]]:
        band = self.customer_band(customer_id)
        items = self.popular.get(band) or self.popular.get(ALL_BAND, [])
        return band, items


# --- building -------------------------------------------------------------------------------


def _category_codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    cat = pd.Categorical(values.fillna("").astype(str))
    return np.asarray(cat.codes, dtype=np.int32), [str(c) for c in cat.categories]


def _photo_ids(images_dir: Path) -> set[str]:
    """Ids that have ``images/<3 digits>/<id>.jpg``; one directory listing per folder."""
    found: set[str] = set()
    if not images_dir.is_dir():
        return found
    for sub in os.scandir(images_dir):
        if sub.is_dir() and len(sub.name) == 3:
            for entry in os.scandir(sub.path):
                if entry.name.endswith(".jpg"):
                    found.add(entry.name[:-4])
    return found


def popular_by_band(
    transactions: pd.DataFrame, customers: pd.DataFrame, weeks: int, per_band: int
) -> dict[str, list[str]]:
    """Most bought articles per age band in the last ``weeks`` weeks of ``transactions``.

    Ties break by article id, so the list is deterministic. Each band is padded with the
    overall list (in its order) up to ``per_band`` so a sparse band still fills a page.
    """
    if transactions.empty:
        return {ALL_BAND: []}
    last = pd.Timestamp(transactions["t_dat"].max()).normalize()
    start = last - pd.Timedelta(days=7 * weeks - 1)
    recent = transactions.loc[transactions["t_dat"] >= start, ["customer_id", "article_id"]]
    bands = customers[["customer_id", "age"]].copy()
    bands["band"] = [decade_label(float(a)) for a in bands["age"].to_numpy(dtype=np.float32)]
    recent = recent.merge(bands[["customer_id", "band"]], on="customer_id", how="left")
    recent["band"] = recent["band"].fillna(UNKNOWN_BAND).astype(str)
    recent["article_id"] = recent["article_id"].astype(str)

    def ranked(frame: pd.DataFrame) -> list[str]:
        counts = frame.groupby("article_id").size().reset_index(name="n")
        counts = counts.sort_values(["n", "article_id"], ascending=[False, True])
        return counts["article_id"].head(per_band).tolist()

    overall = ranked(recent)
    out = {ALL_BAND: overall}
    for band, frame in recent.groupby("band"):
        items = ranked(frame)
        seen = set(items)
        items += [a for a in overall if a not in seen][: max(0, per_band - len(items))]
        out[str(band)] = items
    return out


def build_catalogue(
    articles: pd.DataFrame,
    customers: pd.DataFrame,
    transactions: pd.DataFrame,
    images_dir: Path,
    popular_weeks: int = 2,
    popular_per_band: int = 500,
    version: str | None = None,
) -> Catalogue:
    article_ids = articles["article_id"].astype(str).tolist()
    attributes = {col: _category_codes(articles[col]) for col in FILTER_COLUMNS}
    mean_price = transactions.groupby(transactions["article_id"].astype(str))["price"].mean()
    price = mean_price.reindex(article_ids).to_numpy(dtype=np.float32)
    photos = _photo_ids(images_dir)
    has_image = np.array([aid in photos for aid in article_ids], dtype=bool)

    # Customers: the file's, plus any that only appear in transactions (unknown attributes).
    purchases = transactions.groupby(transactions["customer_id"].astype(str)).size()
    ids = pd.Index(customers["customer_id"].astype(str)).union(purchases.index)
    ages = customers.set_index(customers["customer_id"].astype(str))["age"]
    ages = ages[~ages.index.duplicated()]
    order = np.argsort(ids.to_numpy(dtype=object).astype("S64"), kind="stable")
    sorted_ids = ids.to_numpy(dtype=object).astype("S64")[order]
    age_arr = ages.reindex(ids).to_numpy(dtype=np.float32)[order]
    bought = purchases.reindex(ids).fillna(0).to_numpy(dtype=np.int32)[order]

    popular = popular_by_band(transactions, customers, popular_weeks, popular_per_band)
    if version is None:
        digest = hashlib.sha256("\n".join(article_ids).encode())
        digest.update(np.nan_to_num(price, nan=-1).tobytes())
        version = digest.hexdigest()[:12]
    log.info(
        "catalogue: %d articles (%d with photos), %d customers", len(article_ids), int(has_image.sum()), len(sorted_ids)
    )
    return Catalogue(
        version=version,
        article_ids=article_ids,
        names=articles["prod_name"].fillna("").astype(str).tolist(),
        descriptions=articles["detail_desc"].fillna("").astype(str).tolist()
        if "detail_desc" in articles
        else [""] * len(article_ids),
        attributes=attributes,
        price=price,
        has_image=has_image,
        customer_ids=sorted_ids,
        customer_age=age_arr,
        customer_purchases=bought,
        popular=popular,
        images_dir=images_dir,
    )


def load_catalogue(data_dir: Path, cache_dir: Path | None, popular_weeks: int, popular_per_band: int) -> Catalogue:
    """Blocking: read the data folder (through the shared parquet cache when writable)."""
    from shared.data import load_dataset

    try:
        dataset = load_dataset(data_dir, cache_dir)
    except OSError as exc:
        if cache_dir is None or isinstance(exc, FileNotFoundError):
            raise
        log.warning("parquet cache %s not usable (%s); reading the CSVs directly", cache_dir, exc)
        dataset = load_dataset(data_dir, None)
    return build_catalogue(
        dataset.articles,
        dataset.customers,
        dataset.transactions,
        images_dir=data_dir / "images",
        popular_weeks=popular_weeks,
        popular_per_band=popular_per_band,
    )
