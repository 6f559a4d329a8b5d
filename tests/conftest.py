"""Fixtures every test folder shares: the real H&M sample and a synthetic tiny world."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
