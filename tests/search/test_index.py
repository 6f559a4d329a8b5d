"""A servable index before the photos are done: `hmrec index --text-only`, the progress file,
the 503 (with the progress and Retry-After) of image search meanwhile, /readyz's warming detail,
and the hot swap to the full index when `hmrec index` finishes; both indexes built and answering
on a synthetic world."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from pipeline.cli import cli
from services.search import index as files


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 96), (200, 30, 30)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def text_only_out(sample_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("text_only")
    result = CliRunner().invoke(
        cli, ["index", "--text-only", "--data-dir", str(sample_world), "--output-dir", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_text_only_index_has_everything_but_photos(text_only_out: Path, sample_articles) -> None:
    search = text_only_out / "search"
    manifest = json.loads((search / files.MANIFEST_FILE).read_text())
    # every article but the last has a photo (conftest)
    assert manifest["image_index"] == {"status": "pending", "total": len(sample_articles) - 1}
    assert files.image_status(manifest, search) == "pending"
    for name in (files.CATALOGUE_FILE, files.TFIDF_FILE, files.TEXT_EMBEDDINGS_FILE, "customer_history.parquet"):
        assert (search / name).is_file(), name
    assert not (search / files.IMAGE_FILE).exists() and not (search / files.PROGRESS_FILE).exists()


@pytest.mark.slow
def test_text_only_index_serves_text_and_503s_photos_until_the_full_index_swaps_in(
    text_only_out: Path, sample_world: Path, search_settings, search_index, tmp_path: Path
) -> None:
    from services.search.app import create_app

    out = tmp_path / "out"
    shutil.copytree(text_only_out, out)
    search = out / "search"
    settings = search_settings.model_copy(update={"index_dir": search})
    with TestClient(create_app(settings)) as c:
        slot = c.app.state.slot
        text = c.post("/search/text", json={"query": "black dress", "k": 5})
        assert text.status_code == 200 and len(text.json()["results"]) == 5

        ready = c.get("/readyz")
        body = ready.json()
        assert ready.status_code == 200 and body["images"] == "pending" and body["image_search"] is False
        total = body["warming"]["images"]["total"]
        assert body["warming"] == {"images": {"done": 0, "total": total}} and total > 0

        r = c.post("/search/image", files={"file": ("q.jpg", _jpeg(), "image/jpeg")})
        assert r.status_code == 503 and r.headers["Retry-After"] == "30"
        assert r.json()["detail"].startswith("photos are not indexed yet")

        # A photo build under way reports its progress.
        files.write_progress(search, 40, 100)
        r = c.post("/search/image", files={"file": ("q.jpg", _jpeg(), "image/jpeg")})
        assert r.status_code == 503 and r.headers["Retry-After"] == "30"
        assert r.json()["detail"].startswith("indexing photos, 40 % (40 of 100)")
        assert c.get("/readyz").json()["warming"] == {"images": {"done": 40, "total": 100}}
        files.write_progress(search, 100, 100)  # every photo embedded, the projection still fitting
        r = c.post("/search/image", files={"file": ("q.jpg", _jpeg(), "image/jpeg")})
        assert r.status_code == 503 and r.headers["Retry-After"] == "10" and "finishing" in r.json()["detail"]

        # The full build: progress after each chunk, then a new manifest the service swaps in.
        pending_version = slot.version
        result = CliRunner().invoke(
            cli, ["index", "images", "--data-dir", str(sample_world), "--output-dir", str(out), "--batch-size", "16"]
        )
        assert result.exit_code == 0, result.output
        progress = files.read_progress(search)
        assert progress is not None and progress["done"] == progress["total"] == total
        manifest = json.loads((search / files.MANIFEST_FILE).read_text())
        assert manifest["image_index"] == {"status": "complete", "photos": total}
        assert slot.reload() and slot.version != pending_version  # what the poller does
        ready = c.get("/readyz").json()
        assert ready["images"] == "complete" and ready["image_search"] is True and "warming" not in ready
        r = c.post("/search/image", files={"file": ("q.jpg", _jpeg(), "image/jpeg")}, data={"k": "3"})
        assert r.status_code == 200 and len(r.json()["results"]) == 3


def test_progress_is_written_after_each_chunk_and_a_re_run_reuses_every_photo(tmp_path: Path, monkeypatch) -> None:
    from tests.search.test_image import CountingEmbedder, _tiny_photo_world

    articles = _tiny_photo_world(tmp_path, 8)  # 7 photos, one article without
    out = tmp_path / "search"
    monkeypatch.setattr(files, "CHUNK", 3)
    seen: list[tuple[int, int]] = []
    real = files.write_progress

    def spy(index_dir: Path, done: int, total: int) -> None:
        real(index_dir, done, total)
        on_disk = json.loads((index_dir / files.PROGRESS_FILE).read_text())
        assert set(on_disk) == {"done", "total", "updated"} and "T" in on_disk["updated"]
        seen.append((on_disk["done"], on_disk["total"]))

    monkeypatch.setattr(files, "write_progress", spy)
    report = files.build_image_index(
        articles, tmp_path / "images", out, batch_size=2, progress=False, embedder=CountingEmbedder()
    )
    # start, after hashing (0 reused), then after each part file of >= 3 photos (batches of 2: 4, 4, then the rest)
    assert seen[:2] == [(0, 7), (0, 7)] and seen[-1] == (7, 7) and len(seen) >= 4
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert report["image_index"] == {"status": "complete", "photos": 7}

    seen.clear()
    again = CountingEmbedder()
    report = files.build_image_index(articles, tmp_path / "images", out, progress=False, embedder=again)
    assert again.photos == 0 and report["images_reused"] == 7 and seen == [(0, 7), (7, 7)]


def test_image_status_of_manifests_old_and_new(tmp_path: Path) -> None:
    assert files.image_status({}, tmp_path) == "absent"
    (tmp_path / files.IMAGE_FILE).write_bytes(b"")
    assert files.image_status({}, tmp_path) == "complete"  # written before the field existed
    assert files.image_status({"image_index": {"status": "pending"}}, tmp_path) == "pending"
    assert files.read_progress(tmp_path) is None
    (tmp_path / files.PROGRESS_FILE).write_text("{half")
    assert files.read_progress(tmp_path) is None  # unreadable: as if absent, never a 500


@pytest.mark.slow
def test_a_text_rebuild_re_embeds_only_changed_documents(sample_articles, tmp_path: Path) -> None:

    articles = sample_articles.head(20).copy()
    first = files.build_text_index(articles, None, tmp_path, progress=False)
    assert (first["text_documents_embedded"], first["text_documents_reused"]) == (20, 0)
    before = np.load(tmp_path / files.TEXT_EMBEDDINGS_FILE)

    articles.loc[3, "prod_name"] = "Completely different name"
    again = files.build_text_index(articles, None, tmp_path, progress=False)
    assert (again["text_documents_embedded"], again["text_documents_reused"]) == (1, 19)
    after = np.load(tmp_path / files.TEXT_EMBEDDINGS_FILE)
    keep = [i for i in range(20) if i != 3]
    assert np.array_equal(after[keep], before[keep]) and not np.allclose(after[3], before[3])

    (tmp_path / files.TEXT_KEYS_FILE).write_bytes(b"garbage")  # unreadable keys: embed everything, no crash
    third = files.build_text_index(articles, None, tmp_path, progress=False)
    assert third["text_documents_embedded"] == 20
    assert np.allclose(np.load(tmp_path / files.TEXT_EMBEDDINGS_FILE), after, atol=1e-5)


@pytest.mark.slow
def test_indexes_build_and_answer_on_a_synthetic_world(tiny_world: Path, tmp_path: Path) -> None:
    """The synthetic world's files go through the same builders (first 60 articles, to stay quick)."""
    from services.search.engine import SearchIndex
    from services.search.index import build_image_index, build_text_index, write_manifest
    from services.search.settings import SearchSettings
    from shared.data import load_dataset

    data = load_dataset(tiny_world)
    articles = data.articles.head(60)
    out = tmp_path / "search"
    write_manifest(out, build_text_index(articles, data.transactions, out, progress=False))
    write_manifest(out, build_image_index(articles, tiny_world / "images", out, progress=False))
    index = SearchIndex.load(out, SearchSettings(index_dir=out, models_dir=tmp_path / "models"))
    dress_like = articles["product_type_name"].iloc[0]
    answer = index.text_search(dress_like.lower(), k=3, mode="tfidf")
    assert answer.results and all(r.article_id in set(articles["article_id"]) for r in answer.results)
    assert index.describe()["photos"] == 60
