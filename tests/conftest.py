"""Fixtures several test folders share: the real H&M sample, a synthetic tiny world, a two-tower
trained on it, and a search index over real articles and photos (each built once a session)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd
import pytest
from hypothesis import settings

# Property tests assert behaviour, not speed: on a busy 2-core CI machine an example can take
# longer than hypothesis' default 200 ms deadline without anything being wrong.
settings.register_profile("hmrec", deadline=None)
settings.load_profile("hmrec")

REPO_ROOT = Path(__file__).resolve().parents[1]
HM_SAMPLE_DIR = (REPO_ROOT / ".." / "shared" / "data" / "hm_sample").resolve()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def hm_sample_dir() -> Path:
    """Real rows and photos from the public H&M data set (team material beside the repo)."""
    if not (HM_SAMPLE_DIR / "articles.csv").exists():
        pytest.skip(f"real H&M sample not found at {HM_SAMPLE_DIR} (expected ../shared/data/hm_sample)")
    return HM_SAMPLE_DIR


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic `tiny` H&M world with images, generated once per test session."""
    from pipeline.synthetic import generate_world

    out = tmp_path_factory.mktemp("tiny_world")
    generate_world(out, scale="tiny", seed=0, images=True)
    return out


# Worlds and models several test folders use (candidate, search, pipeline), built once a session.


@pytest.fixture(scope="session")
def tiny_dataset(tiny_world: Path):
    from shared.data import load_dataset

    return load_dataset(tiny_world)


@pytest.fixture(scope="session")
def tiny_cutoff(tiny_dataset) -> date:
    from shared.split import default_cutoff

    return default_cutoff(tiny_dataset.transactions)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_dataset, tiny_cutoff) -> Path:
    """models_dir with two_tower/v1 trained on `tiny` (a few seconds) and published."""
    from services.candidate.train import train_two_tower
    from tests.candidate.conftest import FAST_CONFIG

    models = tmp_path_factory.mktemp("models")
    train_two_tower(tiny_dataset, tiny_cutoff, models, "v1", seed=0, config=FAST_CONFIG, progress=False)
    return models


@pytest.fixture(scope="session")
def sample_articles(hm_sample_dir: Path) -> pd.DataFrame:
    from shared.data import load_articles
    from tests.search.conftest import EVERY

    return load_articles(hm_sample_dir / "articles.csv").iloc[::EVERY].reset_index(drop=True)


@pytest.fixture(scope="session")
def sample_world(tmp_path_factory: pytest.TempPathFactory, hm_sample_dir: Path, sample_articles: pd.DataFrame) -> Path:
    from tests.search.conftest import CUSTOMER_A, CUSTOMER_B

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
