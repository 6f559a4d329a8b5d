"""The competition's time split: the last 7 days are labels, every feature comes from before.

``cutoff`` is the first day of the label week. History is ``t_dat < cutoff``; labels are
``cutoff <= t_dat < cutoff + 7 days``. Nothing computed for a label week may look at a
row on or after its cutoff.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

LABEL_DAYS = 7


def as_timestamp(d: date | str | pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(d).normalize()


def default_cutoff(transactions: pd.DataFrame) -> date:
    """First day of the final 7-day week: the last date minus 6 days."""
    last = pd.Timestamp(transactions["t_dat"].max()).normalize()
    return (last - pd.Timedelta(days=LABEL_DAYS - 1)).date()


def history_before(transactions: pd.DataFrame, cutoff: date | pd.Timestamp) -> pd.DataFrame:
    """Rows strictly before ``cutoff``."""
    return transactions[transactions["t_dat"] < as_timestamp(cutoff)]


def label_week(transactions: pd.DataFrame, cutoff: date | pd.Timestamp, days: int = LABEL_DAYS) -> pd.DataFrame:
    """Rows in ``[cutoff, cutoff + days)``."""
    start = as_timestamp(cutoff)
    end = start + pd.Timedelta(days=days)
    t = transactions["t_dat"]
    return transactions[(t >= start) & (t < end)]


def split(transactions: pd.DataFrame, cutoff: date | pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history strictly before cutoff, the label week starting at cutoff)."""
    return history_before(transactions, cutoff), label_week(transactions, cutoff)


def shift_cutoff(cutoff: date, weeks: int) -> date:
    """The cutoff ``weeks`` weeks earlier (negative: later); e.g. the ranker's training week."""
    return cutoff - timedelta(days=LABEL_DAYS * weeks)


def purchases_by_customer(labels: pd.DataFrame) -> dict[str, set[str]]:
    """customer_id -> set of article_ids bought in the label rows (the ground truth)."""
    grouped = labels.groupby("customer_id", observed=True)["article_id"].agg(lambda s: set(s.astype(str)))
    return {str(k): v for k, v in grouped.items()}
