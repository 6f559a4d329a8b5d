"""Fixtures of the candidate tests: a hand-made toy dataset, and ``FAST_CONFIG``, the small two-tower
that the root conftest's ``trained`` fixture trains on `tiny`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pytest

from services.candidate.settings import TwoTowerTrainConfig

CUTOFF = date(2020, 9, 16)


def cid(n: int) -> str:
    return f"{n:064x}"


def aid(n: int) -> str:
    return f"{n:010d}"


@dataclass
class ToyDataset:
    articles: pd.DataFrame
    customers: pd.DataFrame
    transactions: pd.DataFrame


def toy_dataset() -> ToyDataset:
    """5 articles, 4 customers (customer 4 never buys), purchases over three weeks before
    CUTOFF (2020-09-16) and some in the label week."""
    articles = pd.DataFrame(
        {
            "article_id": [aid(i) for i in range(1, 6)],
            "product_type_name": ["Trousers", "Sweater", "Trousers", "Dress", "Socks"],
            "product_group_name": [
                "Garment Lower body",
                "Garment Upper body",
                "Garment Lower body",
                "Garment Full body",
                "Socks & Tights",
            ],
            "colour_group_name": ["Black", "Blue", "Black", "Red", "White"],
            "perceived_colour_master_name": ["Black", "Blue", "Black", "Red", "White"],
            "department_name": ["Trousers", "Knitwear", "Trousers", "Dresses", "Socks"],
            "index_name": ["Ladieswear", "Menswear", "Ladieswear", "Ladieswear", "Baby Sizes 50-98"],
            "section_name": ["Womens", "Mens", "Womens", "Womens", "Kids"],
            "garment_group_name": ["Trousers", "Knitwear", "Trousers", "Dresses", "Socks and Tights"],
            "graphical_appearance_name": ["Solid", "Stripe", "Solid", "Solid", "Solid"],
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": [cid(i) for i in range(1, 5)],
            "FN": np.array([1.0, 0.0, 0.0, 1.0], np.float32),
            "Active": np.array([1.0, 0.0, 0.0, 0.0], np.float32),
            "club_member_status": ["ACTIVE", "ACTIVE", "PRE-CREATE", ""],
            "fashion_news_frequency": ["Regularly", "NONE", "NONE", ""],
            "age": np.array([23.0, 51.0, np.nan, 30.0], np.float32),
            "postal_code": ["p1", "p2", "p1", ""],
        }
    )
    rows = [
        # day, customer, article, price
        ("2020-08-27", 1, 1, 0.02),
        ("2020-08-27", 1, 2, 0.03),
        ("2020-09-02", 1, 3, 0.02),
        ("2020-09-03", 2, 2, 0.05),
        ("2020-09-10", 1, 1, 0.02),
        ("2020-09-10", 3, 4, 0.04),
        ("2020-09-15", 2, 4, 0.04),
        # label week [2020-09-16, 2020-09-23)
        ("2020-09-16", 1, 4, 0.04),
        ("2020-09-18", 2, 5, 0.01),
        ("2020-09-20", 3, 1, 0.02),
    ]
    tx = pd.DataFrame(
        {
            "t_dat": pd.to_datetime([r[0] for r in rows]),
            "customer_id": [cid(r[1]) for r in rows],
            "article_id": [aid(r[2]) for r in rows],
            "price": np.array([r[3] for r in rows], np.float32),
            "sales_channel_id": np.full(len(rows), 2, np.int8),
        }
    )
    return ToyDataset(articles, customers, tx)


@pytest.fixture
def toy() -> ToyDataset:
    return toy_dataset()


FAST_CONFIG = TwoTowerTrainConfig(
    embedding_dim=16,
    id_dim=8,
    cat_dim=4,
    hidden=32,
    history_len=8,
    train_weeks=8,
    batch_size=256,
    epochs=2,
    patience=1,
    val_customers=300,
    postal_buckets=50,
)
