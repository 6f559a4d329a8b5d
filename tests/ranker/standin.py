"""A stand-in for stage-one candidates, for tests only (the real pipeline uses the two-tower).

Each customer's candidates: what they bought in the last 8 weeks before the cutoff plus
the most popular articles of the last week, with a made-up "score" that favours recent
repurchases then popularity (so the score is informative, like a retrieval score).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd


def standin_candidates(
    transactions: pd.DataFrame, cutoff: date, customers: list[str], n_popular: int = 30
) -> pd.DataFrame:
    cut = pd.Timestamp(cutoff)
    hist = transactions[transactions["t_dat"] < cut]
    recent = hist[hist["t_dat"] >= cut - pd.Timedelta(weeks=8)]
    last_week = hist[hist["t_dat"] >= cut - pd.Timedelta(days=7)]
    popular = last_week["article_id"].value_counts().head(n_popular)
    pop = pd.DataFrame({"article_id": popular.index.astype(str), "pop_score": np.linspace(0.5, 0.0, len(popular))})
    wanted = pd.Series(customers, dtype=str)
    rep = recent[recent["customer_id"].isin(wanted)].groupby(["customer_id", "article_id"], observed=True).size()
    rep = rep.rename("n").reset_index()
    rep["score"] = 0.6 + 0.1 * np.minimum(rep["n"], 4)
    cross = pd.DataFrame({"customer_id": wanted}).merge(pop, how="cross").rename(columns={"pop_score": "score"})
    out = pd.concat(
        [
            rep[["customer_id", "article_id", "score"]].astype({"customer_id": str, "article_id": str}),
            cross[["customer_id", "article_id", "score"]],
        ],
        ignore_index=True,
    )
    return out.drop_duplicates(["customer_id", "article_id"]).reset_index(drop=True)
