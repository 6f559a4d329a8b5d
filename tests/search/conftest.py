"""Fixtures for the search tests: settings, the loaded index and a client over the index that the
root conftest (``sample_world``, ``index_dir``) builds from a small world of REAL H&M articles and
photos, which the constants here describe.

Every 12th article of the real sample (125 articles, ~0.2 s of CPU embedding each on a busy
machine), photos linked from the sample, one article whose photo is removed (skipped and
counted), and a hand-written transactions file whose prices and histories the tests check.
Indexes are built once per session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

EVERY = 12
CUSTOMER_A = "a" * 64  # bought two known articles
CUSTOMER_B = "b" * 64  # bought one
UNKNOWN_CUSTOMER = "c" * 64


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
