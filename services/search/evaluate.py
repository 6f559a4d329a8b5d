"""Offline quality of search, on any folder with ``articles.csv`` and ``images/``.

Image: leave-one-out precision@10 — each photo queries all the others; a hit is a neighbour
of the same ``product_group_name`` (shape) or the same ``colour_group_name`` (colour).
Methods: ``embedder`` (pretrained CNN alone), ``colour_histogram`` (whole-photo RGB histogram
alone: the two single-signal baselines), ``garment_colour`` (the histogram with the
background masked out) and ``default`` (the attribute projection the service uses).

The projection is learned from catalogue labels, so it is scored with 5-fold cross-fitting:
for the queries of one fold the projection is fitted on the other four folds only, then used
to embed the query and the whole gallery. A query's own labels are never seen by the model
that embeds it — as for a shopper's upload — while the gallery, like the real catalogue,
may have been in training.

Text: a query per (colour group, product type) pair with at least 3 articles, worded from the
catalogue ("black dress"); relevant = articles of that colour and type. p@12 is hits in the
top 12 divided by min(12, number relevant), so a query with 5 relevant articles can score 1.
Scored through the same SearchIndex code path the service uses.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.search.image import (
    AttributeProjection,
    ImageEmbedder,
    l2_normalise,
    photo_colour_histogram,
)
from services.search.index import photo_path

IMAGE_K = 10
TEXT_K = 12
FOLDS = 5
MIN_RELEVANT = 3


def precision_at_k(neighbours: np.ndarray, labels: np.ndarray, queries: np.ndarray) -> float:
    """Mean share of each query's neighbours (rows of ``neighbours``) that share its label."""
    return float((labels[neighbours] == labels[queries][:, None]).mean())


def loo_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Top-k neighbours of each query row among all rows except itself (cosine, unit rows)."""
    sims = vectors[queries] @ vectors.T
    sims[np.arange(len(queries)), queries] = -np.inf
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1, kind="stable")
    return np.take_along_axis(top, order, 1)


def image_quality(
    articles: pd.DataFrame,
    images_dir: Path,
    work_dir: Path,
    batch_size: int = 32,
    folds: int = FOLDS,
    progress: bool = True,
    embedder: ImageEmbedder | None = None,
) -> dict[str, Any]:
    """Scores of every image method. Photo embeddings go through the resumable index builder
    into ``work_dir`` (never the served index), so a second evaluation embeds nothing."""
    from sklearn.model_selection import KFold

    from services.search.image import load_photo
    from services.search.index import IMAGE_FILE, build_image_index, read_image_embeddings

    built = build_image_index(
        articles,
        images_dir,
        work_dir,
        batch_size=batch_size,
        progress=progress,
        embedder=embedder,
        fit_projection=False,
    )
    ids, _, cnn, colour = read_image_embeddings(work_dir / IMAGE_FILE)
    if len(ids) <= IMAGE_K:
        raise ValueError(f"{images_dir}: {len(ids)} article photos; image evaluation needs more than {IMAGE_K}")
    frame = articles.set_index(articles["article_id"].astype(str)).loc[ids]
    groups = frame["product_group_name"].astype(str).to_numpy(dtype=object)
    colours = frame["colour_group_name"].astype(str).to_numpy(dtype=object)
    hist = np.stack([photo_colour_histogram(load_photo(photo_path(images_dir, a))) for a in ids])
    everyone = np.arange(len(ids))

    def score(neighbours: np.ndarray, queries: np.ndarray) -> dict[str, float]:
        return {
            "p@10_product_group": round(precision_at_k(neighbours, groups, queries), 4),
            "p@10_colour_group": round(precision_at_k(neighbours, colours, queries), 4),
        }

    out: dict[str, Any] = {
        "embedder": score(loo_neighbours(l2_normalise(cnn), everyone, IMAGE_K), everyone),
        "colour_histogram": score(loo_neighbours(hist, everyone, IMAGE_K), everyone),
        "garment_colour": score(loo_neighbours(colour, everyone, IMAGE_K), everyone),
    }
    fit_started = time.perf_counter()
    neighbours = np.zeros((len(ids), IMAGE_K), dtype=np.int64)
    for train, test in KFold(min(folds, len(ids)), shuffle=True, random_state=0).split(everyone):
        projection = AttributeProjection.fit(cnn[train], colour[train], groups[train], colours[train])
        neighbours[test] = loo_neighbours(projection.project(cnn, colour), test, IMAGE_K)
    out["default"] = score(neighbours, everyone)
    meta = {
        "photos": len(ids),
        "articles_without_photo": built["images_skipped_no_photo"],
        "photos_embedded_now": built["images_embedded"],
        "embed_seconds_per_1000": built["embed_seconds_per_1000"],
        "projection_crossfit_seconds": round(time.perf_counter() - fit_started, 1),
        "folds": folds,
    }
    return {"scores": out, "meta": meta}


def text_queries(articles: pd.DataFrame, min_relevant: int = MIN_RELEVANT) -> list[tuple[str, np.ndarray]]:
    """("black dress", catalogue rows of black dresses) for each big enough (colour, type) pair."""
    frame = articles.reset_index(drop=True)
    queries = []
    pairs = frame.groupby(["colour_group_name", "product_type_name"], observed=True).indices
    for (colour, ptype), rows in sorted(pairs.items()):
        if len(rows) >= min_relevant and "unknown" not in (str(colour).lower(), str(ptype).lower()):
            queries.append((f"{colour} {ptype}".lower(), np.asarray(rows)))
    return queries


def text_quality(articles: pd.DataFrame, progress: bool = False) -> dict[str, Any]:
    from services.search.engine import SearchIndex
    from services.search.index import build_text_index, write_manifest
    from services.search.settings import SearchSettings

    articles = articles.reset_index(drop=True)
    queries = text_queries(articles)
    if not queries:
        raise ValueError("no (colour group, product type) pair has enough articles to build text queries")
    with tempfile.TemporaryDirectory(prefix="search-eval-") as tmp:
        report = build_text_index(articles, None, Path(tmp), progress=progress)
        write_manifest(Path(tmp), report)
        settings = SearchSettings(index_dir=Path(tmp), personal_source="off")
        index = SearchIndex.load(Path(tmp), settings, with_images=False)
    ids = articles["article_id"].astype(str).to_numpy()
    out: dict[str, Any] = {}
    for mode in ("tfidf", "semantic", "hybrid"):
        started = time.perf_counter()
        precisions = []
        for query, relevant_rows in queries:
            relevant = {ids[r] for r in relevant_rows}
            answer = index.text_search(query, k=TEXT_K, mode=mode)
            hits = sum(r.article_id in relevant for r in answer.results)
            precisions.append(hits / min(TEXT_K, len(relevant)))
        out[mode] = {
            "p@12": round(float(np.mean(precisions)), 4),
            "ms_per_query": round(1000 * (time.perf_counter() - started) / len(queries), 2),
        }
    return {
        "scores": out,
        "meta": {"queries": len(queries), "min_relevant": MIN_RELEVANT, "example_queries": [q for q, _ in queries[:5]]},
    }


def evaluate_search_quality(
    data_dir: Path, work_dir: Path, limit: int | None = None, progress: bool = True
) -> dict[str, Any]:
    """The JSON the issue asks for, plus a ``meta`` block (sizes, protocol, timings)."""
    from shared.data import load_articles

    data_dir = Path(data_dir)
    path = data_dir / "articles.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: evaluate search needs articles.csv and images/")
    articles = load_articles(path)
    if limit is not None:
        articles = articles.head(limit)
    image = image_quality(articles, data_dir / "images", Path(work_dir), progress=progress)
    text = text_quality(articles, progress=False)
    return {
        "image": image["scores"],
        "text": text["scores"],
        "meta": {"data_dir": str(data_dir), "articles": len(articles), "image": image["meta"], "text": text["meta"]},
    }


def format_report(result: dict[str, Any]) -> str:
    lines = ["image search (leave-one-out p@10)", f"  {'method':<18} {'product group':>14} {'colour group':>13}"]
    for method, s in result["image"].items():
        lines.append(f"  {method:<18} {s['p@10_product_group']:>14.4f} {s['p@10_colour_group']:>13.4f}")
    lines += ["text search (p@12, catalogue-attribute queries)"]
    for mode, s in result["text"].items():
        lines.append(f"  {mode:<18} {s['p@12']:>14.4f}")
    return "\n".join(lines)
