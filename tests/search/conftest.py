"""Fixtures for the search tests: a small world of REAL H&M articles and photos.

Every 12th article of the real sample (125 articles, ~0.2 s of CPU embedding each on a busy
machine), photos linked from the sample, one article whose photo is removed (skipped and
counted), and a hand-written transactions file whose prices and histories the tests check.
Indexes are built once per session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from shared.config import get_paths  # noqa: F401  (sets the TF env vars first)

EVERY = 12
CUSTOMER_A = "a" * 64  # bought two known articles
CUSTOMER_B = "b" * 64  # bought one
UNKNOWN_CUSTOMER = "c" * 64


@pytest.fixture(scope="session")
def sample_articles(hm_sample_dir: Path) -> pd.DataFrame:
    from shared.data import load_articles

    return load_articles(hm_sample_dir / "articles.csv").iloc[::EVERY].reset_index(drop=True)


@pytest.fixture(scope="session")
def sample_world(tmp_path_factory: pytest.TempPathFactory, hm_sample_dir: Path, sample_articles: pd.DataFrame) -> Path:
    root = tmp_path_factory.mktemp("search_world")
    # Re-read the CSV text rows so the file keeps the genuine Kaggle format (quoted fields etc.).
    raw = pd.read_csv(hm_sample_dir / "articles.csv", dtype=str, keep_default_na=False)
    raw = raw[raw["article_id"].isin(set(sample_articles["article_id"]))]
    raw.to_csv(root / "articles.csv", index=False)
    ids = sample_articles["article_id"].tolist()
    for article_id in ids[:-1]:  # the last article has no photo
        src = hm_sample_dir / "images" / article_id[:3] / f"{article_id}.jpg"
        dst = root / "images" / article_id[:3] / f"{article_id}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src, dst)
    # Prices: ids[0] sold at 0.01 and 0.03 (mean 0.02), ids[1] at 0.05 (mean 0.05); the rest never sold.
    tx = pd.DataFrame(
        {
            "t_dat": ["2020-09-01", "2020-09-02", "2020-09-03"],
            "customer_id": [CUSTOMER_A, CUSTOMER_A, CUSTOMER_B],
            "article_id": [ids[0], ids[1], ids[0]],
            "price": [0.01, 0.05, 0.03],
            "sales_channel_id": [2, 1, 2],
        }
    )
    tx.to_csv(root / "transactions_train.csv", index=False)
    return root


@pytest.fixture(scope="session")
def index_dir(sample_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from services.search.index import build_image_index, build_text_index, write_manifest
    from shared.data import load_dataset

    out = tmp_path_factory.mktemp("search_out") / "search"
    data = load_dataset(sample_world)
    write_manifest(out, build_text_index(data.articles, data.transactions, out, progress=False))
    write_manifest(out, build_image_index(data.articles, sample_world / "images", out, progress=False))
    return out


@pytest.fixture(scope="session")
def search_settings(index_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from services.search.settings import SearchSettings

    # An empty models dir: personalisation uses the text vectors (no two-tower model).
    return SearchSettings(
        index_dir=index_dir,
        models_dir=tmp_path_factory.mktemp("no_models"),
        max_upload_bytes=256 * 1024,
        log_level="WARNING",
    )


@pytest.fixture(scope="session")
def search_index(index_dir: Path, search_settings):
    from services.search.engine import SearchIndex

    return SearchIndex.load(index_dir, search_settings)


@pytest.fixture(scope="session")
def client(search_settings, search_index):
    """The app, sharing the session's loaded models (loading them again costs seconds)."""
    from fastapi.testclient import TestClient

    from services.search.app import create_app

    app = create_app(search_settings)
    with TestClient(app) as c:
        yield c
