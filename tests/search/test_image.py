"""Image features, the attribute projection, the resumable index build and photo queries."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from services.search.image import (
    COLOUR_BINS,
    AttributeProjection,
    garment_colour,
    garment_mask,
    photo_colour_histogram,
)
from services.search.index import IMAGE_FILE, build_image_index, read_image_embeddings


def _red_square_on_grey() -> np.ndarray:
    pixels = np.full((40, 40, 3), 235, dtype=np.uint8)  # light grey studio background
    pixels[10:30, 10:30] = (200, 20, 20)  # a 20x20 red garment
    return pixels


def _bin(rgb: tuple[int, int, int]) -> int:
    step = 256 // COLOUR_BINS
    return (rgb[0] // step * COLOUR_BINS + rgb[1] // step) * COLOUR_BINS + rgb[2] // step


def test_garment_mask_is_what_differs_from_the_border() -> None:
    mask = garment_mask(_red_square_on_grey())
    assert mask.sum() == 400 and mask[10:30, 10:30].all()


def test_garment_colour_ignores_the_background_the_photo_histogram_does_not() -> None:
    pixels = _red_square_on_grey()
    garment = garment_colour(pixels)
    # all 400 garment pixels fall in the red bin: sqrt(400) / ||.|| = 1
    assert garment[_bin((200, 20, 20))] == pytest.approx(1.0)
    photo = photo_colour_histogram(pixels)
    # whole photo: 1200 grey + 400 red -> sqrt: 34.6 vs 20 -> the grey background dominates
    assert photo[_bin((235, 235, 235))] == pytest.approx(np.sqrt(1200) / np.sqrt(1200 + 400), rel=1e-5)


def test_projection_handles_binary_and_single_class_labels() -> None:
    rng = np.random.default_rng(0)
    cnn = rng.normal(size=(40, 8)).astype(np.float32)
    cnn[:20, 0] += 4  # class "A" separable on feature 0
    colour = np.abs(rng.normal(size=(40, 4))).astype(np.float32)
    groups = np.array(["A"] * 20 + ["B"] * 20)
    projection = AttributeProjection.fit(cnn, colour, groups, np.array(["Black"] * 40))
    p = projection.group.proba(cnn)
    assert p.shape == (40, 2) and np.allclose(p.sum(1), 1)
    assert (p[:20, 0] > 0.5).mean() > 0.9 and (p[20:, 1] > 0.5).mean() > 0.9
    assert projection.colour.proba(np.hstack([cnn, colour])).tolist() == [[1.0]] * 40
    v = projection.project(cnn, colour)
    assert v.shape == (40, 2 + 1 + 8) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


def test_projection_round_trips_through_a_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    cnn, colour = rng.normal(size=(30, 6)).astype(np.float32), rng.random((30, 3)).astype(np.float32)
    projection = AttributeProjection.fit(cnn, colour, np.array(list("ABC") * 10), np.array(list("XY") * 15))
    projection.save(tmp_path / "p.npz")
    again = AttributeProjection.load(tmp_path / "p.npz")
    np.testing.assert_allclose(again.project(cnn, colour), projection.project(cnn, colour), rtol=1e-6)


class CountingEmbedder:
    """Stands in for EfficientNet: deterministic vectors from the pixels, and a call count."""

    def __init__(self) -> None:
        self.photos = 0

    def embed_pixels(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.photos += len(pixels)
        cnn = np.zeros((len(pixels), 1280), np.float32)
        cnn[:, 0] = pixels.reshape(len(pixels), -1).mean(1)
        cnn[:, 1] = 1
        colour = np.stack([garment_colour(p) for p in pixels])
        return cnn / np.linalg.norm(cnn, axis=1, keepdims=True), colour


def _tiny_photo_world(root: Path, n: int) -> pd.DataFrame:
    ids = [f"01234567{i:02d}" for i in range(n)]
    for i, a in enumerate(ids[:-1]):  # the last article has no photo
        (root / "images" / a[:3]).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (30, 45), (10 * i, 100, 200)).save(root / "images" / a[:3] / f"{a}.jpg")
    return pd.DataFrame(
        {
            "article_id": ids,
            "product_group_name": ["Garment Upper body", "Shoes"] * (n // 2),
            "colour_group_name": ["Blue", "Red"] * (n // 2),
        }
    )


def test_index_build_skips_missing_photos_and_resumes_without_re_embedding(tmp_path: Path) -> None:
    articles = _tiny_photo_world(tmp_path, 6)
    out = tmp_path / "search"
    first = CountingEmbedder()
    report = build_image_index(articles, tmp_path / "images", out, batch_size=2, progress=False, embedder=first)
    assert (report["images"], report["images_skipped_no_photo"], report["images_embedded"]) == (5, 1, 5)
    assert first.photos == 5
    ids, shas, cnn, colour = read_image_embeddings(out / IMAGE_FILE)
    assert ids == articles["article_id"].tolist()[:5] and cnn.shape == (5, 1280) and colour.shape == (5, 512)

    # Second run: nothing changed, nothing embedded again.
    second = CountingEmbedder()
    report = build_image_index(articles, tmp_path / "images", out, progress=False, embedder=second)
    assert (second.photos, report["images_reused"]) == (0, 5)

    # A replaced photo (new bytes) is embedded again, and only that one.
    a = articles["article_id"].iloc[2]
    Image.new("RGB", (30, 45), (250, 0, 0)).save(tmp_path / "images" / a[:3] / f"{a}.jpg")
    third = CountingEmbedder()
    build_image_index(articles, tmp_path / "images", out, progress=False, embedder=third)
    assert third.photos == 1


def test_index_build_resumes_from_parts_left_by_an_interrupted_run(tmp_path: Path) -> None:
    articles = _tiny_photo_world(tmp_path, 6)
    out = tmp_path / "search"

    class Crashing(CountingEmbedder):
        def embed_pixels(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if self.photos >= 2:
                raise KeyboardInterrupt
            return super().embed_pixels(pixels)

    import services.search.index as index_module

    original = index_module.CHUNK
    index_module.CHUNK = 2  # a part file every two photos
    try:
        with pytest.raises(KeyboardInterrupt):
            build_image_index(articles, tmp_path / "images", out, batch_size=2, progress=False, embedder=Crashing())
        assert len(list((out / "image_parts").glob("part-*.parquet"))) == 1
        resumed = CountingEmbedder()
        report = build_image_index(articles, tmp_path / "images", out, batch_size=2, progress=False, embedder=resumed)
    finally:
        index_module.CHUNK = original
    assert (resumed.photos, report["images_reused"], report["images"]) == (3, 2, 5)
    assert not (out / "image_parts").exists()


def _photo(hm_sample_dir: Path, article_id: str) -> bytes:
    return (hm_sample_dir / "images" / article_id[:3] / f"{article_id}.jpg").read_bytes()


def test_catalogue_photo_finds_similar_articles_but_never_itself(search_index, sample_articles, hm_sample_dir) -> None:
    frame = search_index.catalogue.frame.set_index("article_id")
    # Queries from the two big groups of this 124-photo gallery (51 upper-body, 23 lower-body
    # garments): a small group (3 pairs of shoes) cannot fill ten neighbours, whatever the model.
    big = sample_articles[sample_articles["product_group_name"].isin(["Garment Upper body", "Garment Lower body"])]
    same_group = []
    for article_id in big.groupby("product_group_name").head(4)["article_id"]:
        data = _photo(hm_sample_dir, article_id)
        with Image.open(io.BytesIO(data)) as image:
            answer = search_index.image_search(
                image.convert("RGB"), k=10, photo_sha256=hashlib.sha256(data).hexdigest()
            )
        ids = [r.article_id for r in answer.results]
        assert article_id not in ids and len(ids) == 10
        group = frame.loc[article_id, "product_group_name"]
        same_group.append(np.mean([frame.loc[i, "product_group_name"] == group for i in ids]))
    # Chance would be ~0.41 (upper) and ~0.19 (lower); on all 1,500 photos the default space
    # reaches ~0.8.
    assert np.mean(same_group) >= 0.6, same_group


def test_a_re_encoded_catalogue_photo_finds_its_own_article_first(search_index, sample_articles, hm_sample_dir) -> None:
    article_id = sample_articles["article_id"].iloc[3]
    with Image.open(io.BytesIO(_photo(hm_sample_dir, article_id))) as image:
        png = io.BytesIO()
        image.save(png, format="PNG")  # other bytes, same picture: not "the article's own photo"
        answer = search_index.image_search(Image.open(png).convert("RGB"), k=3, mode="default")
    assert answer.results[0].article_id == article_id
    assert answer.mode == "image:default"


def test_image_modes_and_an_article_without_photo(search_index, sample_articles, hm_sample_dir) -> None:
    no_photo = sample_articles["article_id"].iloc[-1]
    with Image.open(io.BytesIO(_photo(hm_sample_dir, sample_articles["article_id"].iloc[0]))) as image:
        rgb = image.convert("RGB")
    for mode in ("default", "embedder", "colour"):
        ids = [r.article_id for r in search_index.image_search(rgb, k=100, mode=mode).results]
        assert len(ids) == 100 and no_photo not in ids
    with pytest.raises(ValueError, match="unknown image search mode"):
        search_index.image_search(rgb, mode="sketch")
