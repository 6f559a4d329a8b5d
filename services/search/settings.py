"""Search service settings (env prefix ``HM_SEARCH_``) and the tunables the index builder shares."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.config import get_paths
from shared.contract.schemas import SearchMode
from shared.serving.app import ServiceSettings

# Product photos are ~0.2-2 megapixels; 40 MP is generous for a photo and small enough that a
# decompression bomb (a tiny file that inflates to gigapixels) is refused before decoding.
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024

PersonalisationSource = Literal["auto", "two_tower", "text", "off"]


class SearchSettings(ServiceSettings):
    """Where the indexes live and how queries are scored (``HM_SEARCH_*``; the shared ones are
    in ``shared.serving.app.ServiceSettings``)."""

    model_config = SettingsConfigDict(env_prefix="HM_SEARCH_", extra="ignore")

    index_dir: Path = Field(default_factory=lambda: get_paths().search_dir)
    # two-tower article embeddings for personalisation
    models_dir: Path = Field(default_factory=lambda: get_paths().models_dir)

    default_mode: SearchMode = "hybrid"
    # Weighted reciprocal-rank fusion: score = sum_i w_i / (rrf_k + rank_i). Measured on the
    # real sample's 142 attribute queries (p@12): TF-IDF 0.841, semantic 0.556; RRF with the
    # paper's k=60 and equal weights 0.775 (the weak ranker drags the strong one down);
    # k=10 and semantic weight 0.3: 0.852 (0.844-0.852 for weights 0.2-0.5, a flat region).
    # Semantic still lifts paraphrases TF-IDF cannot match ("navy" -> Dark Blue).
    rrf_k: int = Field(default=10, ge=1)
    rrf_weight_tfidf: float = Field(default=1.0, ge=0)
    rrf_weight_semantic: float = Field(default=0.3, ge=0)
    # Facets count the top `facet_pool` matches (after filters), not the whole catalogue.
    facet_pool: int = Field(default=200, ge=1, le=100_000)

    # Personalisation: final = (1 - w) * relevance + w * affinity, both min-max scaled over
    # the top `personal_pool` matches; w = 0 or source 'off' switches it off.
    personal_weight: float = Field(default=0.3, ge=0, le=1)
    personal_pool: int = Field(default=200, ge=1, le=10_000)
    personal_source: PersonalisationSource = "auto"

    # Upload safety.
    max_upload_bytes: int = Field(default=DEFAULT_MAX_UPLOAD_BYTES, ge=1024)
    max_image_pixels: int = Field(default=DEFAULT_MAX_IMAGE_PIXELS, ge=10_000)
    # Per side, as well as per pixel count: an 8 x 60,000 strip is few pixels but a huge square.
    max_image_side: int = Field(default=8192, ge=64)
    # Photos decoded at once (each may hold up to max_image_pixels of RGB while it decodes);
    # a request waits at most decode_wait_s for a turn, then is shed with 503 + Retry-After.
    max_concurrent_decodes: int = Field(default=2, ge=1)
    decode_wait_s: float = Field(default=2.0, gt=0)

    # One torch thread per request: a single short forward pass gains little from splitting,
    # and concurrent requests (FastAPI's threadpool) then use the cores without oversubscribing.
    torch_threads: int = Field(default=1, ge=0)  # 0: torch's default
    # BLAS threads (the [n, 384] x [384] semantic scores, the projection): one, as in the
    # candidate and ranker services; 16 concurrent queries otherwise each woke a spinning pool.
    blas_threads: int = Field(default=1, ge=1, le=64)
    # ONNX Runtime's intra-op threads per encoder (services.search.onnx_models; 0: one per core),
    # one for the same reason as torch_threads. HM_SEARCH_BACKEND=auto|onnx|torch picks the runtime.
    ort_threads: int = Field(default=1, ge=0)
    # Distinct queries whose MiniLM embedding is kept (LRU; 0: no cache). Head queries repeat.
    query_cache_size: int = Field(default=4096, ge=0)

    @model_validator(mode="after")
    def _rrf_has_a_ranker(self) -> SearchSettings:
        if self.rrf_weight_tfidf == 0 and self.rrf_weight_semantic == 0:
            raise ValueError("rrf_weight_tfidf and rrf_weight_semantic cannot both be 0")
        return self
