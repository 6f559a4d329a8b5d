"""Building the search indexes under ``output/search/``.

Files (all written by this module, read by engine.SearchIndex):

- ``catalogue.parquet``         article id, name, filter columns, mean price
- ``tfidf.pkl``                 the TF-IDF vectorisers and article matrix
- ``text_embeddings.npy``       float32 [n_articles, 384], rows aligned with the catalogue
- ``text_embedding_keys.npy``   sha256 of each row's document: unchanged documents are reused
- ``image_embeddings.parquet``  article_id, sha256 of the photo, cnn [1280], colour [512]
- ``image_projection.npz``      the attribute projection learned from the catalogue
- ``customer_history.parquet``  recent purchases per customer (personalisation)
- ``manifest.json``             index version, counts, models; written last. Its ``image_index``
                                says whether photos are served: ``{"status": "pending"}`` (text
                                is built, photos are not yet), ``"complete"`` or ``"absent"``
                                (the data has no images/)
- ``image_progress.json``       {"done", "total", "updated"} while photos are being embedded

Image embedding is the slow step (~45 ms a photo on one busy CPU core pair). It runs in
batches and appends each finished chunk to ``image_parts/``, so an interrupted build resumes
where it stopped; photos whose bytes did not change are never embedded twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from services.search.filters import build_catalogue
from services.search.image import (
    CNN_DIM,
    COLOUR_DIM,
    EMBEDDER_NAME,
    AttributeProjection,
    ImageEmbedder,
    load_photo,
)
from services.search.personal import HISTORY_FILE, build_customer_history
from services.search.semantic import MODEL_NAME as TEXT_MODEL_NAME
from services.search.text import TfidfIndex, article_documents
from shared.artifacts import new_version

log = logging.getLogger(__name__)

CATALOGUE_FILE = "catalogue.parquet"
TFIDF_FILE = "tfidf.pkl"
TEXT_EMBEDDINGS_FILE = "text_embeddings.npy"
TEXT_KEYS_FILE = "text_embedding_keys.npy"  # per row: sha256 of the document (reuse across builds)
IMAGE_FILE = "image_embeddings.parquet"
PROJECTION_FILE = "image_projection.npz"
MANIFEST_FILE = "manifest.json"
PROGRESS_FILE = "image_progress.json"
PARTS_DIR = "image_parts"
CHUNK = 256  # photos per resumable part file (and per progress update)
IMAGE_STATUS_KEY = "image_index"
PENDING, COMPLETE, ABSENT = "pending", "complete", "absent"


def image_status(manifest: dict[str, Any], index_dir: Path) -> str:
    """``pending`` | ``complete`` | ``absent``. A manifest written before the field existed is
    complete when it has photo embeddings."""
    entry = manifest.get(IMAGE_STATUS_KEY)
    if isinstance(entry, dict) and entry.get("status") in (PENDING, COMPLETE, ABSENT):
        return str(entry["status"])
    return COMPLETE if (Path(index_dir) / IMAGE_FILE).exists() else ABSENT


def write_progress(index_dir: Path, done: int, total: int) -> None:
    """``image_progress.json`` = {"done", "total", "updated" (ISO time)}, replaced atomically."""
    body = json.dumps({"done": done, "total": total, "updated": datetime.now(UTC).isoformat()})
    _atomic_write(index_dir / PROGRESS_FILE, lambda p: p.write_text(body))


def read_progress(index_dir: Path) -> dict[str, Any] | None:
    try:
        progress = json.loads((Path(index_dir) / PROGRESS_FILE).read_text())
        return {"done": int(progress["done"]), "total": int(progress["total"]), "updated": progress.get("updated")}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def photo_path(images_dir: Path, article_id: str) -> Path:
    return images_dir / article_id[:3] / f"{article_id}.jpg"


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path)


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    tmp.replace(path)


def _image_schema() -> pa.Schema:
    return pa.schema(
        [
            ("article_id", pa.string()),
            ("sha256", pa.string()),
            ("cnn", pa.list_(pa.float32(), CNN_DIM)),
            ("colour", pa.list_(pa.float32(), COLOUR_DIM)),
        ]
    )


def _table(ids: list[str], shas: list[str], cnn: np.ndarray, colour: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "article_id": pa.array(ids, pa.string()),
            "sha256": pa.array(shas, pa.string()),
            "cnn": pa.FixedSizeListArray.from_arrays(pa.array(cnn.astype(np.float32).ravel()), CNN_DIM),
            "colour": pa.FixedSizeListArray.from_arrays(pa.array(colour.astype(np.float32).ravel()), COLOUR_DIM),
        },
        schema=_image_schema(),
    )


def read_image_embeddings(path: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(article ids, photo sha256s, cnn [N, 1280], colour [N, 512])."""
    table = pq.read_table(path)
    n = table.num_rows

    def matrix(name: str, dim: int) -> np.ndarray:
        if n == 0:
            return np.zeros((0, dim), dtype=np.float32)
        flat = table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return flat.astype(np.float32).reshape(n, dim)

    return (
        table.column("article_id").to_pylist(),
        table.column("sha256").to_pylist(),
        matrix("cnn", CNN_DIM),
        matrix("colour", COLOUR_DIM),
    )


Embeddings = dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]


def _reusable_embeddings(index_dir: Path, parts_dir: Path) -> Embeddings:
    # Reuse: the finished file from an earlier build and any parts of an interrupted one,
    # keyed by (article, photo bytes), so a replaced photo is embedded again.
    done: Embeddings = {}
    sources = sorted(parts_dir.glob("part-*.parquet"))
    if (index_dir / IMAGE_FILE).exists():
        sources.insert(0, index_dir / IMAGE_FILE)
    for src in sources:
        try:
            a_ids, shas, cnn, colour = read_image_embeddings(src)
        except Exception as exc:
            log.warning("ignoring unreadable %s: %s", src, exc)
            continue
        for i, (a, s) in enumerate(zip(a_ids, shas, strict=True)):
            done[(a, s)] = (cnn[i], colour[i])
    return done


def _embed_into(
    done: Embeddings,
    todo: list[str],
    paths: dict[str, Path],
    hashes: dict[str, str],
    parts_dir: Path,
    embedder: ImageEmbedder,
    batch_size: int,
    progress: bool,
    on_chunk: Callable[[int], None] = lambda _n: None,
) -> None:
    """Embed ``todo``'s photos in chunks, each chunk written as a part file as soon as it is done
    (an interrupted build resumes from the parts), and add them to ``done``. The next batch's
    photos are decoded on a second thread while the CNN runs (PIL and ONNX Runtime release
    the GIL); ``on_chunk(photos embedded so far)`` after each part file."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    next_part = len(list(parts_dir.glob("part-*.parquet")))
    bar = tqdm(total=len(todo), desc="embedding photos", unit="photo", disable=not progress)
    batches = [todo[b : b + batch_size] for b in range(0, len(todo), batch_size)]

    def decode(batch: list[str]) -> np.ndarray:
        return np.stack([load_photo(paths[a]) for a in batch])

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
        pending = pool.submit(decode, batches[0]) if batches else None
        ids: list[str] = []
        embedded = 0  # (tqdm's own count stays 0 when the bar is disabled)
        cnn_parts: list[np.ndarray] = []
        colour_parts: list[np.ndarray] = []
        for i, batch in enumerate(batches):
            assert pending is not None
            pixels = pending.result()
            pending = pool.submit(decode, batches[i + 1]) if i + 1 < len(batches) else None
            cnn, colour = embedder.embed_pixels(pixels)
            ids += batch
            embedded += len(batch)
            cnn_parts.append(cnn)
            colour_parts.append(colour)
            bar.update(len(batch))
            if len(ids) >= CHUNK or pending is None:
                cnn, colour = np.concatenate(cnn_parts), np.concatenate(colour_parts)
                table = _table(ids, [hashes[a] for a in ids], cnn, colour)
                _atomic_write(parts_dir / f"part-{next_part:05d}.parquet", partial(_write_parquet, table))
                next_part += 1
                for j, a in enumerate(ids):
                    done[(a, hashes[a])] = (cnn[j], colour[j])
                on_chunk(embedded)
                ids, cnn_parts, colour_parts = [], [], []
    bar.close()


def build_image_index(
    articles: pd.DataFrame,
    images_dir: Path,
    index_dir: Path,
    batch_size: int = 32,
    progress: bool = True,
    embedder: ImageEmbedder | None = None,
    fit_projection: bool = True,
) -> dict[str, Any]:
    """Embed every article photo into ``image_embeddings.parquet`` (resumable) and fit the
    attribute projection. Returns counts and timings for the manifest."""

    index_dir.mkdir(parents=True, exist_ok=True)
    parts_dir = index_dir / PARTS_DIR
    parts_dir.mkdir(exist_ok=True)
    started = time.perf_counter()

    ids = articles["article_id"].astype(str).tolist()
    paths = {a: photo_path(images_dir, a) for a in ids}
    with_photo = [a for a in ids if paths[a].is_file()]
    skipped = len(ids) - len(with_photo)

    def sha(a: str) -> str:
        return hashlib.sha256(paths[a].read_bytes()).hexdigest()

    write_progress(index_dir, 0, len(with_photo))  # a build is under way (hashing 100k photos takes a while)
    done = _reusable_embeddings(index_dir, parts_dir)
    hashes = {a: sha(a) for a in with_photo}
    todo = [a for a in with_photo if (a, hashes[a]) not in done]
    reused = len(with_photo) - len(todo)
    write_progress(index_dir, reused, len(with_photo))
    embed_started, cpu_started = time.perf_counter(), time.process_time()
    if todo:
        _embed_into(
            done,
            todo,
            paths,
            hashes,
            parts_dir,
            embedder or ImageEmbedder(),
            batch_size,
            progress,
            lambda n: write_progress(index_dir, reused + n, len(with_photo)),
        )
    embed_seconds, embed_cpu = time.perf_counter() - embed_started, time.process_time() - cpu_started

    cnn = np.stack([done[(a, hashes[a])][0] for a in with_photo]) if with_photo else np.zeros((0, CNN_DIM), np.float32)
    colour = (
        np.stack([done[(a, hashes[a])][1] for a in with_photo]) if with_photo else np.zeros((0, COLOUR_DIM), np.float32)
    )
    table = _table(with_photo, [hashes[a] for a in with_photo], cnn, colour)
    _atomic_write(index_dir / IMAGE_FILE, lambda p: pq.write_table(table, p))
    shutil.rmtree(parts_dir, ignore_errors=True)

    fit_started = time.perf_counter()
    if with_photo and fit_projection:
        labelled = articles.set_index(articles["article_id"].astype(str)).loc[with_photo]
        projection = AttributeProjection.fit(
            cnn,
            colour,
            labelled["product_group_name"].astype(str).to_numpy(),
            labelled["colour_group_name"].astype(str).to_numpy(),
        )
        _atomic_write(index_dir / PROJECTION_FILE, projection.save)
    return {
        "images": len(with_photo),
        "images_skipped_no_photo": skipped,
        "images_embedded": len(todo),
        "images_reused": reused,
        "embed_seconds": round(embed_seconds, 2),
        "embed_seconds_per_1000": round(1000 * embed_seconds / len(todo), 1) if todo else None,
        "embed_cpu_seconds_per_1000": round(1000 * embed_cpu / len(todo), 1) if todo else None,
        "projection_fit_seconds": round(time.perf_counter() - fit_started, 2),
        "image_seconds_total": round(time.perf_counter() - started, 2),
        "embedder": EMBEDDER_NAME,
        IMAGE_STATUS_KEY: {"status": COMPLETE, "photos": len(with_photo)},
    }


def image_index_pending(articles: pd.DataFrame, images_dir: Path | None, index_dir: Path) -> dict[str, Any]:
    """The manifest part of a text-only build: photos ``pending`` (the data has photos, not yet
    embedded into this index) or ``absent``. Removes a progress file left by an earlier build."""
    (index_dir / PROGRESS_FILE).unlink(missing_ok=True)
    if images_dir is None or not images_dir.is_dir():
        return {IMAGE_STATUS_KEY: {"status": ABSENT}}
    total = sum(photo_path(images_dir, a).is_file() for a in articles["article_id"].astype(str))
    return {IMAGE_STATUS_KEY: {"status": PENDING, "total": int(total)}}


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.save would append ".npy" to a temp name
        np.save(fh, array)


def text_keys(documents: list[str]) -> np.ndarray:
    """sha256 of (model, max length, document) per document, as bytes [N] (S64)."""
    from services.search.semantic import MAX_SEQ_LENGTH

    prefix = f"{TEXT_MODEL_NAME}|{MAX_SEQ_LENGTH}|".encode()
    return np.array([hashlib.sha256(prefix + d.encode()).hexdigest() for d in documents], dtype="S64")


def _reusable_text_vectors(index_dir: Path, keys: np.ndarray) -> tuple[np.ndarray, list[bool]]:
    """[N, 384] with the rows of documents an earlier build already embedded (same text, same
    model), and which rows those are. MiniLM costs ~15 CPU ms a document (ORT and torch alike:
    batched documents are compute-bound), so `hmrec index` after `--text-only` re-encodes nothing."""
    from services.search.semantic import EMBEDDING_DIM

    vectors = np.zeros((len(keys), EMBEDDING_DIM), dtype=np.float32)
    reused = [False] * len(keys)
    try:
        old_keys = np.load(index_dir / TEXT_KEYS_FILE)
        old = np.load(index_dir / TEXT_EMBEDDINGS_FILE, mmap_mode="r")
        if len(old_keys) != len(old) or old.shape[1:] != (EMBEDDING_DIM,):
            return vectors, reused
    except (OSError, ValueError):
        return vectors, reused
    row_of = {k: i for i, k in enumerate(old_keys.tolist())}
    for i, k in enumerate(keys.tolist()):
        j = row_of.get(k)
        if j is not None:
            vectors[i] = old[j]
            reused[i] = True
    return vectors, reused


def build_text_index(
    articles: pd.DataFrame, transactions: pd.DataFrame | None, index_dir: Path, progress: bool = True
) -> dict[str, Any]:
    """Catalogue (with prices), TF-IDF, text embeddings and customer histories."""
    from services.search.semantic import SemanticEncoder

    index_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    catalogue = build_catalogue(articles, transactions)
    _atomic_write(index_dir / CATALOGUE_FILE, lambda p: catalogue.to_parquet(p, index=False))
    documents = article_documents(articles)
    tfidf = TfidfIndex.build(documents)
    _atomic_write(index_dir / TFIDF_FILE, tfidf.save)
    tfidf_seconds = time.perf_counter() - started

    t, cpu = time.perf_counter(), time.process_time()
    keys = text_keys(documents)
    vectors, reused = _reusable_text_vectors(index_dir, keys)
    todo = [i for i in range(len(documents)) if reused[i] is False]
    if todo:
        vectors[todo] = SemanticEncoder().encode([documents[i] for i in todo], progress=progress)
    (index_dir / TEXT_KEYS_FILE).unlink(missing_ok=True)  # keys last: never beside vectors they do not match
    _atomic_write(index_dir / TEXT_EMBEDDINGS_FILE, lambda p: _save_npy(p, vectors))
    _atomic_write(index_dir / TEXT_KEYS_FILE, lambda p: _save_npy(p, keys))
    semantic_seconds, semantic_cpu = time.perf_counter() - t, time.process_time() - cpu

    histories = 0
    if transactions is not None and len(transactions):
        history = build_customer_history(transactions, catalogue["article_id"])
        _atomic_write(index_dir / HISTORY_FILE, lambda p: history.to_parquet(p, index=False))
        histories = int(history["customer_id"].nunique())
    return {
        "articles": len(catalogue),
        "priced_articles": int(catalogue["price"].notna().sum()),
        "customers_with_history": histories,
        "tfidf_seconds": round(tfidf_seconds, 2),
        "text_embedding_seconds": round(semantic_seconds, 2),
        "text_embedding_cpu_seconds": round(semantic_cpu, 2),
        "text_documents_embedded": len(todo),
        "text_documents_reused": len(documents) - len(todo),
        "text_model": TEXT_MODEL_NAME,
    }


def write_manifest(index_dir: Path, parts: dict[str, Any]) -> dict[str, Any]:
    """Merge ``parts`` into manifest.json with a fresh version (services hot-swap on it)."""
    path = index_dir / MANIFEST_FILE
    manifest: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    manifest.update(parts)
    manifest["built_at"] = datetime.now(UTC).isoformat()
    manifest["version"] = new_version()  # the one version scheme of every artifact (shared.artifacts)
    _atomic_write(path, lambda p: p.write_text(json.dumps(manifest, indent=2, default=str)))
    return manifest


def read_manifest(index_dir: Path) -> dict[str, Any]:
    path = Path(index_dir) / MANIFEST_FILE
    if not path.exists():
        raise FileNotFoundError(f"no search index at {index_dir} (no {MANIFEST_FILE}); run `hmrec index` first")
    return json.loads(path.read_text())
