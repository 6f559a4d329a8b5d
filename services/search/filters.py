"""The searchable catalogue: filter columns, price, filtering and facet counts.

Price per article is the mean transaction price when transactions exist (the data has no
list price); an article never sold has no price (NaN). A price-range filter therefore
excludes never-sold articles — a shopper asking for "under 0.02" wants known prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from shared.contract.schemas import FILTER_COLUMNS, FacetValue, SearchFilters


def build_catalogue(articles: pd.DataFrame, transactions: pd.DataFrame | None) -> pd.DataFrame:
    """article_id, prod_name, the filter columns (missing ones as ""), price (mean, float32)."""
    out = pd.DataFrame({"article_id": articles["article_id"].astype(str).to_numpy()})
    for column in ("prod_name", *FILTER_COLUMNS):
        values = articles[column] if column in articles.columns else pd.Series([""] * len(articles))
        out[column] = values.astype("string").fillna("").to_numpy()
    if transactions is not None and len(transactions):
        mean_price = transactions.groupby("article_id", observed=True)["price"].mean()
        out["price"] = out["article_id"].map(mean_price).astype("float32")
    else:
        out["price"] = np.full(len(out), np.nan, dtype=np.float32)
    return out


@dataclass
class Catalogue:
    frame: pd.DataFrame
    # Each filter column as integer codes (fast masks) plus the code -> value table.
    codes: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    price: np.ndarray
    row_of: dict[str, int]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Catalogue:
        frame = frame.reset_index(drop=True)
        codes, values = {}, {}
        for column in FILTER_COLUMNS:
            c, v = pd.factorize(frame[column].astype(str), sort=True)
            codes[column], values[column] = c.astype(np.int32), np.asarray(v, dtype=object)
        ids = frame["article_id"].astype(str).tolist()
        return cls(frame, codes, values, frame["price"].to_numpy(dtype=np.float32), {a: i for i, a in enumerate(ids)})

    def __len__(self) -> int:
        return len(self.frame)

    @cached_property
    def article_ids(self) -> np.ndarray:
        # Once per index: converting 12,000 (arrow) strings per request cost more than scoring.
        return self.frame["article_id"].to_numpy(dtype=object)

    def mask(self, filters: SearchFilters | None) -> np.ndarray | None:
        """bool [n_articles] of the articles that pass every filter; None when no filter is set.

        Within a column the values are OR-ed ("Black or White"), across columns AND-ed. An
        unknown value matches nothing (an empty result, not an error: facets show the values).
        """
        if filters is None:
            return None
        keep: np.ndarray | None = None
        for column in FILTER_COLUMNS:
            wanted = getattr(filters, column)
            if not wanted:
                continue
            wanted_codes = np.flatnonzero(np.isin(self.values[column], list(wanted)))
            m = np.isin(self.codes[column], wanted_codes)
            keep = m if keep is None else keep & m
        if filters.price_min is not None or filters.price_max is not None:
            with np.errstate(invalid="ignore"):
                m = ~np.isnan(self.price)
                if filters.price_min is not None:
                    m &= self.price >= filters.price_min
                if filters.price_max is not None:
                    m &= self.price <= filters.price_max
            keep = m if keep is None else keep & m
        return keep

    def facets(self, rows: np.ndarray) -> dict[str, list[FacetValue]]:
        """For each filter column, the values among ``rows`` with their counts (most frequent
        first, then alphabetical); empty strings are not a value a shopper can pick."""
        return {
            column: [FacetValue(value=v, count=n) for v, n in present]
            for column, present in self.facet_counts(rows).items()
        }

    def facet_counts(self, rows: np.ndarray) -> dict[str, list[tuple[str, int]]]:
        """:meth:`facets` as (value, count) pairs (the service writes them without objects)."""
        out: dict[str, list[tuple[str, int]]] = {}
        rows = np.asarray(rows, dtype=np.int64)
        for column in FILTER_COLUMNS:
            counts = np.bincount(self.codes[column][rows], minlength=len(self.values[column]))
            present_codes = np.flatnonzero(counts)
            present = [(str(self.values[column][i]), int(counts[i])) for i in present_codes]
            present = [(v, n) for v, n in present if v != ""]
            present.sort(key=lambda vn: (-vn[1], vn[0]))
            out[column] = present
        return out
