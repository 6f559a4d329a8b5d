"""A loaded search index: text and image queries, filters, facets and personalisation.

Both the service (app.py) and the CLI (``hmrec search ...``) query through this class, so
the command line answers exactly what the API answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from PIL import Image

from services.search import index as files
from services.search.filters import Catalogue
from services.search.image import AttributeProjection, ImageEmbedder, l2_normalise
from services.search.personal import CustomerHistory, Personaliser, load_two_tower_vectors
from services.search.semantic import SemanticEncoder
from services.search.settings import SearchSettings
from services.search.text import TfidfIndex
from shared.contract.schemas import SearchFilters, SearchResponse

log = logging.getLogger(__name__)

IMAGE_MODES: tuple[str, ...] = ("default", "embedder", "colour")
RRF_DEPTH = 1000  # each ranker contributes its top 1,000 (after filters) to the fusion
PHOTOS_RETRY_AFTER_S = 30


class PhotosPending(LookupError):
    """Image search asked of an index whose photos are still being embedded (a 503 with
    Retry-After: text search works meanwhile)."""

    def __init__(self, message: str, retry_after_s: int = PHOTOS_RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


def top_indices(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` largest finite scores, best first (stable among ties)."""
    finite = np.flatnonzero(np.isfinite(scores))
    if len(finite) == 0 or n <= 0:
        return np.empty(0, dtype=np.int64)
    n = min(n, len(finite))
    part = finite[np.argpartition(-scores[finite], n - 1)[:n]] if n < len(finite) else finite
    return part[np.lexsort((part, -scores[part]))]


def reciprocal_rank_fusion(
    score_lists: list[np.ndarray], weights: list[float], k: int = 60, depth: int | None = None
) -> np.ndarray:
    """Weighted RRF: sum_i w_i / (k + rank_i(article)) over each ranker's ``depth`` best matches
    (finite scores; all of them when ``depth`` is None); an article no ranker ranks gets -inf.
    Uses ranks only, so the rankers' score scales (TF-IDF cosine ~0-0.5, embedding cosine
    ~0-0.8) never need calibrating.

    Example (k=1): scores [0.9, 0.1, 0.5] and [0.2, 0.8, 0.6] rank the articles [1, 3, 2]
    and [3, 1, 2], so the fused scores are [1/2+1/4, 1/4+1/2, 1/3+1/3] = [0.75, 0.75, 0.667].
    """
    fused = np.full(len(score_lists[0]), -np.inf)
    for scores, weight in zip(score_lists, weights, strict=True):
        if weight == 0:
            continue
        top = top_indices(scores, len(scores) if depth is None else depth)
        contribution = weight / (k + np.arange(1, len(top) + 1))
        fused[top] = np.where(np.isfinite(fused[top]), fused[top], 0.0) + contribution
    return fused


@dataclass
class SearchIndex:
    version: str
    manifest: dict[str, Any]
    catalogue: Catalogue
    tfidf: TfidfIndex
    text_vectors: np.ndarray  # [n_articles, 384]
    encoder: SemanticEncoder
    settings: SearchSettings
    image_rows: np.ndarray | None = None  # catalogue row of each photo
    image_vectors: dict[str, np.ndarray] = field(default_factory=dict)  # mode -> [n_photos, d]
    photo_sha: dict[str, int] = field(default_factory=dict)  # sha256 -> catalogue row
    projection: AttributeProjection | None = None
    embedder: ImageEmbedder | None = None
    personaliser: Personaliser | None = None
    index_dir: Path | None = None
    images_status: str = files.ABSENT  # pending | complete | absent (index.image_status)

    # --- loading ---------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        index_dir: Path,
        settings: SearchSettings,
        with_images: bool = True,
        encoder: SemanticEncoder | None = None,
        embedder: ImageEmbedder | None = None,
    ) -> SearchIndex:
        index_dir = Path(index_dir)
        manifest = files.read_manifest(index_dir)
        catalogue = Catalogue.from_frame(pd.read_parquet(index_dir / files.CATALOGUE_FILE))
        tfidf = TfidfIndex.load(index_dir / files.TFIDF_FILE)
        text_vectors = np.load(index_dir / files.TEXT_EMBEDDINGS_FILE)
        if len(text_vectors) != len(catalogue) or tfidf.matrix.shape[0] != len(catalogue):
            raise ValueError(
                f"{index_dir}: text index rows ({len(text_vectors)}, {tfidf.matrix.shape[0]}) "
                f"do not match the catalogue ({len(catalogue)}); rebuild with `hmrec index`"
            )
        idx = cls(
            str(manifest["version"]),
            manifest,
            catalogue,
            tfidf,
            text_vectors,
            encoder or SemanticEncoder(threads=settings.ort_threads, cache_size=settings.query_cache_size),
            settings,
        )
        idx.index_dir = index_dir
        idx.images_status = files.image_status(manifest, index_dir)
        if with_images and idx.images_status == files.COMPLETE and (index_dir / files.IMAGE_FILE).exists():
            idx._load_images(index_dir, embedder)
        idx.personaliser = idx._load_personaliser(index_dir)
        idx.warm_up()
        return idx

    def _load_images(self, index_dir: Path, embedder: ImageEmbedder | None) -> None:
        ids, shas, cnn, colour = files.read_image_embeddings(index_dir / files.IMAGE_FILE)
        rows = np.array([self.catalogue.row_of.get(a, -1) for a in ids], dtype=np.int64)
        keep = rows >= 0
        self.image_rows = rows[keep]
        cnn, colour = cnn[keep], colour[keep]
        self.photo_sha = {s: int(r) for s, r, k in zip(shas, rows, keep, strict=True) if k}
        self.image_vectors = {"embedder": l2_normalise(cnn), "colour": l2_normalise(colour)}
        if (index_dir / files.PROJECTION_FILE).exists():
            self.projection = AttributeProjection.load(index_dir / files.PROJECTION_FILE)
            self.image_vectors["default"] = self.projection.project(cnn, colour)
        else:  # no projection (e.g. an index built before it existed): shape features
            self.image_vectors["default"] = self.image_vectors["embedder"]
        self.embedder = embedder or ImageEmbedder(device="cpu", threads=self.settings.ort_threads)

    def _load_personaliser(self, index_dir: Path) -> Personaliser | None:
        s = self.settings
        if s.personal_source == "off" or s.personal_weight == 0:
            return None
        history = CustomerHistory.load(index_dir / "customer_history.parquet", self.catalogue.row_of)
        if history is None:
            return None
        vectors, source = self.text_vectors, "text"
        if s.personal_source in ("auto", "two_tower"):
            found = load_two_tower_vectors(s.models_dir, self.catalogue.article_ids)
            if found is not None:
                vectors, source = found[0], f"two_tower:{found[1]}"
            elif s.personal_source == "two_tower":
                log.warning("personal_source=two_tower but no two-tower model under %s; using text", s.models_dir)
        return Personaliser(history, vectors, source, s.personal_weight, s.personal_pool)

    def warm_up(self) -> None:
        """One query of each kind, so the first real request does not pay for lazy init."""
        self.text_search("dress", k=1)
        if self.embedder is not None:
            self.image_search(Image.new("RGB", (64, 96), (200, 30, 30)), k=1)

    @property
    def has_images(self) -> bool:
        return self.image_rows is not None and len(self.image_rows) > 0

    def photo_progress(self) -> dict[str, int] | None:
        """{"done", "total"} of the photo build under way (image_progress.json), None when none has reported."""
        found = files.read_progress(self.index_dir) if self.index_dir is not None else None
        return None if found is None else {"done": found["done"], "total": found["total"]}

    def photos_unavailable(self) -> LookupError:
        """Why image search cannot answer: :class:`PhotosPending` (with the progress) while the
        photos are still to come, a plain LookupError when the index has none."""
        if self.images_status == files.PENDING:
            p = self.photo_progress()
            if p is not None and p["done"] >= p["total"]:
                return PhotosPending(
                    f"indexing photos, 100 % ({p['done']} of {p['total']}): finishing the index (attribute "
                    "projection); image search opens in a moment, text search works now",
                    retry_after_s=10,
                )
            if p is not None:
                pct = int(100 * p["done"] / max(p["total"], 1))
                return PhotosPending(
                    f"indexing photos, {pct} % ({p['done']} of {p['total']}); image search opens when "
                    "they are done, text search works now"
                )
            return PhotosPending(
                "photos are not indexed yet (this index was built without them: run `hmrec index`); "
                "text search works now"
            )
        return LookupError("this index has no photos; build it with `hmrec index images`")

    def describe(self) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "index_version": self.version,
            "articles": len(self.catalogue),
            "photos": 0 if self.image_rows is None else len(self.image_rows),
            "image_search": self.has_images,
            "images": self.images_status,
            "personalisation": None if self.personaliser is None else self.personaliser.source,
            "text_backend": self.encoder.backend,
        }
        if self.embedder is not None:
            detail["image_backend"] = self.embedder.backend
        if self.images_status == files.PENDING:
            entry = self.manifest.get(files.IMAGE_STATUS_KEY) or {}
            detail["warming"] = {"images": self.photo_progress() or {"done": 0, "total": int(entry.get("total", 0))}}
        return detail

    # --- scoring -----------------------------------------------------------------------------
    def text_relevance(self, query: str, mode: str, allowed: np.ndarray | None) -> np.ndarray:
        """Relevance of every article (-inf: not a match) under ``mode``."""
        if mode == "tfidf":
            scores = self.tfidf.scores(query).astype(np.float64)
            scores[scores <= 0] = -np.inf  # no shared word or n-gram: not a match
        elif mode == "semantic":
            scores = (self.text_vectors @ self.encoder.encode_query(query)).astype(np.float64)
        elif mode == "hybrid":
            scores = self._rrf(query, allowed)
        else:
            raise ValueError(f"unknown text search mode {mode!r}")
        if allowed is not None:
            scores[~allowed] = -np.inf
        return scores

    def _rrf(self, query: str, allowed: np.ndarray | None) -> np.ndarray:
        s = self.settings
        weighted = [(m, w) for m, w in (("tfidf", s.rrf_weight_tfidf), ("semantic", s.rrf_weight_semantic)) if w != 0]
        score_lists = [self.text_relevance(query, mode, allowed) for mode, _ in weighted]
        return reciprocal_rank_fusion(score_lists, [w for _, w in weighted], k=s.rrf_k, depth=RRF_DEPTH)

    def image_relevance(
        self, image: Image.Image, mode: str, allowed: np.ndarray | None, photo_sha256: str | None = None
    ) -> np.ndarray:
        if not self.has_images or self.embedder is None:
            raise self.photos_unavailable()
        if mode not in self.image_vectors:
            raise ValueError(f"unknown image search mode {mode!r}; choose from {', '.join(IMAGE_MODES)}")
        cnn, colour = self.embedder.embed_image(image)
        if mode == "default" and self.projection is not None:
            query = self.projection.project(cnn, colour)[0]
        elif mode == "colour":
            query = colour
        else:
            query = cnn
        assert self.image_rows is not None
        scores = np.full(len(self.catalogue), -np.inf)
        scores[self.image_rows] = self.image_vectors[mode] @ query
        if photo_sha256 is not None and photo_sha256 in self.photo_sha:
            scores[self.photo_sha[photo_sha256]] = -np.inf  # the query is this article's own photo
        if allowed is not None:
            scores[~allowed] = -np.inf
        return scores

    # --- queries -------------------------------------------------------------------------------
    def text_search(
        self,
        query: str,
        k: int = 12,
        filters: SearchFilters | None = None,
        customer_id: str | None = None,
        mode: str | None = None,
    ) -> SearchResponse:
        mode = mode or self.settings.default_mode
        allowed = self.catalogue.mask(filters)
        return self._answer(self.text_relevance(query, mode, allowed), k, customer_id, mode)

    def image_search(
        self,
        image: Image.Image,
        k: int = 12,
        filters: SearchFilters | None = None,
        customer_id: str | None = None,
        mode: str = "default",
        photo_sha256: str | None = None,
    ) -> SearchResponse:
        allowed = self.catalogue.mask(filters)
        return self._answer(self.image_relevance(image, mode, allowed, photo_sha256), k, customer_id, f"image:{mode}")

    def text_search_json(
        self,
        query: str,
        k: int = 12,
        filters: SearchFilters | None = None,
        customer_id: str | None = None,
        mode: str | None = None,
    ) -> bytes:
        """:meth:`text_search`'s answer as JSON bytes (a SearchResponse written without pydantic
        objects: the service's hot path)."""
        mode = mode or self.settings.default_mode
        allowed = self.catalogue.mask(filters)
        return orjson.dumps(self._answer_dict(self.text_relevance(query, mode, allowed), k, customer_id, mode))

    def _answer(self, relevance: np.ndarray, k: int, customer_id: str | None, mode: str) -> SearchResponse:
        return SearchResponse.model_validate(self._answer_dict(relevance, k, customer_id, mode))

    def _answer_dict(self, relevance: np.ndarray, k: int, customer_id: str | None, mode: str) -> dict[str, Any]:
        scores, personalised = relevance, False
        if customer_id and self.personaliser is not None:
            blended = self.personaliser.blend(customer_id, relevance, np.isfinite(relevance))
            if blended is not None:
                scores, personalised = blended, True
        top = top_indices(scores, k)
        pool = top_indices(scores, max(k, self.settings.facet_pool))
        ids = self.catalogue.article_ids
        return {
            "index_version": self.version,
            "mode": mode,
            "personalised": personalised,
            "results": [{"article_id": ids[i], "score": float(scores[i])} for i in top],
            "facets": {
                column: [{"value": v, "count": n} for v, n in present]
                for column, present in self.catalogue.facet_counts(pool).items()
            },
        }
