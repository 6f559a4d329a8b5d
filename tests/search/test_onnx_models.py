"""ONNX Runtime encoders: the same vectors as torch (within float rounding), the export cache,
the fallback, and the bounded query cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.search import onnx_models
from services.search.image import ImageEmbedder, load_photo
from services.search.semantic import QueryCache, SemanticEncoder

QUERIES = [
    "red",
    "a long floral summer dress with short sleeves and a belt",
    "navy jeans",
    "sweater " * 200,  # past MAX_SEQ_LENGTH: truncated the same way by both
]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.slow
def test_onnx_photo_features_equal_torchs_on_real_photos(hm_sample_dir: Path) -> None:
    photos = sorted((hm_sample_dir / "images").rglob("*.jpg"))[::97][:12]
    pixels = np.stack([load_photo(p) for p in photos])
    ort, torch = ImageEmbedder(backend="onnx"), ImageEmbedder(backend="torch", device="cpu")
    assert (ort.backend, torch.backend) == ("onnx", "torch")
    a, b = ort.cnn_features(pixels), torch.cnn_features(pixels)
    assert a.shape == b.shape == (len(photos), 1280)
    assert np.abs(a - b).max() < 1e-4
    assert _cosines(a, b).min() >= 0.9999
    # a batch of one (the service's query) too
    assert np.abs(ort.cnn_features(pixels[:1]) - b[:1]).max() < 1e-4


@pytest.mark.slow
def test_onnx_text_embeddings_equal_torchs_for_queries_and_documents() -> None:
    ort, torch = SemanticEncoder(backend="onnx"), SemanticEncoder(backend="torch", device="cpu")
    assert (ort.backend, torch.backend) == ("onnx", "torch")
    for texts in (QUERIES, QUERIES[:1]):
        a, b = ort.encode_queries(texts), torch.encode_queries(texts)
        assert np.abs(a - b).max() < 1e-4 and _cosines(a, b).min() >= 0.9999
    docs = [f"{q} number {i}" for i, q in enumerate(QUERIES * 10)]
    a, b = ort.encode(docs, batch_size=8), torch.encode(docs, batch_size=8)
    assert a.shape == (len(docs), 384) and np.abs(a - b).max() < 1e-4
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_export_cache_exports_once_atomically_and_keys_by_versions(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HM_ONNX_CACHE_DIR", str(tmp_path))
    calls: list[Path] = []

    def export(path: Path) -> None:
        calls.append(path)
        assert path.parent == tmp_path and path.name.startswith(".")  # a temporary name first
        path.write_bytes(b"model")

    name = onnx_models.model_file_name("m", "torch")
    assert "torch" in name and f"opset{onnx_models.OPSET}" in name and name.endswith(".onnx")
    first = onnx_models.cached_model(name, export)
    second = onnx_models.cached_model(name, export)
    assert first == second == tmp_path / name and first.read_bytes() == b"model" and len(calls) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left

    def broken(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        onnx_models.cached_model("other.onnx", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing half-written stays


def test_backend_choice(monkeypatch) -> None:
    monkeypatch.delenv("HM_SEARCH_BACKEND", raising=False)
    assert onnx_models.requested_backend() == "auto"
    monkeypatch.setenv("HM_SEARCH_BACKEND", "TORCH")
    assert onnx_models.requested_backend() == "torch"
    monkeypatch.setenv("HM_SEARCH_BACKEND", "tensorrt")
    with pytest.raises(ValueError, match="auto, onnx or torch"):
        onnx_models.requested_backend()


@pytest.mark.slow
def test_without_onnxruntime_the_encoders_fall_back_to_torch(monkeypatch) -> None:
    monkeypatch.delenv("HM_SEARCH_BACKEND", raising=False)
    monkeypatch.setattr(onnx_models, "onnxruntime_available", lambda: False)
    assert ImageEmbedder().backend == "torch"
    encoder = SemanticEncoder(device="cpu")
    assert encoder.backend == "torch" and encoder.encode_query("dress").shape == (384,)


def test_query_cache_is_a_bounded_lru() -> None:
    cache = QueryCache(2)
    v = np.ones(3, dtype=np.float32)
    cache.put("a", v)
    cache.put("b", 2 * v)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", 3 * v)  # evicts b, the least recently used
    assert cache.get("b") is None and cache.get("c") is not None and len(cache) == 2
    assert (cache.hits, cache.misses) == (2, 1)
    off = QueryCache(0)
    off.put("a", v)
    assert off.get("a") is None and len(off) == 0


@pytest.mark.slow
def test_encode_query_serves_repeats_from_the_cache() -> None:
    encoder = SemanticEncoder(backend="onnx", cache_size=8)
    first = encoder.encode_query("black dress")
    batches = encoder._queries.batches
    again = encoder.encode_query("black dress")
    assert again is first and encoder._queries.batches == batches  # no forward pass
    assert not again.flags.writeable  # shared: nobody may change it in place
    assert np.allclose(first, encoder.encode_queries(["black dress"])[0], atol=1e-6)
