"""Save and load a trained two-tower model as ``output/models/two_tower/<version>/``.

Layout of a version folder:

- ``weights/``               TF checkpoint of both towers (rebuilt from ``metadata.json``'s shape+config)
- ``vocab.json``, ``articles_vocab.parquet``, ``customers_vocab.parquet``  the FeatureSpace
- ``article_table.npy``      int32 [n_articles + 1, attributes]: the article tower's inputs
- ``article_embeddings.npy`` float32 [n_articles, dim], L2-normalised: the exact NN index
- ``article_stats.parquet``  last sale day and mean price before the cutoff (candidate filter)
- ``customer_features.parquet`` + ``customer_history.npy``  every customer's query inputs as
  of the cutoff (what the service looks up for a known customer; no rows in a model trained
  for batch stage one only, ``metadata.json``'s ``serving_files: false``)
- ``popular.json``           cold-start lists: overall and per age band
- ``stage_one/``             the other candidate sources' tables as of the cutoff (stage_one.py;
  not in a batch-only model)
- ``history.json``, ``training_curves.png``, ``metadata.json``
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.candidate.features import CUSTOMER_CAT_COLUMNS, FeatureSpace
from services.candidate.index import ExactIndex
from services.candidate.settings import TwoTowerTrainConfig
from shared.artifacts import read_metadata
from shared.encode import IdLookup

# Bumped whenever the inputs of the towers change (a model from older code cannot be rebuilt):
# 2 = five dynamic article features; 3 = stage-one tables (``stage_one/``) exported beside the towers.
ARTIFACT_FORMAT = 3

STATIC_COLUMNS = ("customer_idx", "age_bucket", "postal_bucket", "fn", "active", *CUSTOMER_CAT_COLUMNS)


def save_customer_snapshot(folder: Path, customer_ids: np.ndarray, feats: dict[str, np.ndarray]) -> None:
    frame = pd.DataFrame({"customer_id": customer_ids, **{c: feats[c] for c in STATIC_COLUMNS}})
    frame.to_parquet(folder / "customer_features.parquet", index=False)
    np.save(folder / "customer_history.npy", feats["history"])


@dataclass
class LoadedTwoTower:
    """A two-tower version ready to serve: query encoder, exact index and lookup tables."""

    path: Path
    version: str
    metadata: dict[str, Any]
    space: FeatureSpace
    config: TwoTowerTrainConfig
    model: Any
    article_table: np.ndarray
    encoder: Any
    index: ExactIndex
    article_stats: pd.DataFrame
    popular: dict[str, list[str]]
    customer_rows: pd.Index = field(repr=False)
    customer_static: dict[str, np.ndarray] = field(repr=False)
    customer_history: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        self._row_lookup = IdLookup(self.customer_rows.to_numpy(dtype=object))

    @property
    def cutoff(self) -> str | None:
        return self.metadata.get("cutoff")

    def encode(self, feats: dict[str, np.ndarray], batch: int = 4096) -> np.ndarray:
        """Query embeddings float32 [B, dim] for query-tower inputs (see features.QUERY_INPUTS)."""
        n = len(feats["customer_idx"])
        out = [self.encoder({k: v[s : s + batch] for k, v in feats.items()}) for s in range(0, n, batch)]
        return np.concatenate(out) if out else np.zeros((0, self.index.embeddings.shape[1]), np.float32)

    def snapshot_features(self, customer_ids: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Stored query inputs (as of the cutoff) for customers; ``found`` says which were stored."""
        rows = self._row_lookup(customer_ids)
        found = rows >= 0
        if not found.any():  # also a batch-only model's empty snapshot (train_two_tower's for_serving)
            feats = {c: np.zeros(len(rows), v.dtype) for c, v in self.customer_static.items()}
            feats["history"] = np.zeros((len(rows), *self.customer_history.shape[1:]), self.customer_history.dtype)
            return feats, found
        safe = np.where(found, rows, 0)
        feats = {c: v[safe] for c, v in self.customer_static.items()}
        feats["history"] = self.customer_history[safe]
        # A customer missing from the snapshot: unknown everything, empty history.
        for c in feats:
            feats[c] = np.where(found[:, None] if feats[c].ndim == 2 else found, feats[c], 0).astype(feats[c].dtype)
        return feats, found


def load_two_tower(path: Path, warm: bool = True) -> LoadedTwoTower:
    """Rebuild the model from ``metadata.json``, restore its weights, load the index; warm it up."""
    from services.candidate.model import ModelShape, NumpyQueryTower, TwoTowerModel

    path = Path(path)
    meta = read_metadata(path)
    if meta.get("model_kind") != "two_tower":
        raise ValueError(f"{path} is not a two-tower model (model_kind={meta.get('model_kind')!r})")
    if meta.get("artifact_format") != ARTIFACT_FORMAT:
        raise ValueError(
            f"{path} was written in two-tower format {meta.get('artifact_format')!r}, this code reads "
            f"format {ARTIFACT_FORMAT}: retrain it with `hmrec train candidate`"
        )
    space = FeatureSpace.load(path)
    cfg = TwoTowerTrainConfig(**meta["config"])
    shape = ModelShape(**meta["model_shape"])
    table = np.load(path / "article_table.npy")
    if table.shape[0] != space.n_articles + 1:
        raise ValueError(f"{path}: article_table has {table.shape[0]} rows, vocabulary {space.n_articles} + 1")
    model = TwoTowerModel(shape, table, cfg)
    model.build_all()
    model.load_weights(str(path / "weights" / "ckpt")).expect_partial()
    emb = np.load(path / "article_embeddings.npy")
    if emb.shape != (space.n_articles, cfg.embedding_dim):
        raise ValueError(
            f"{path}: article_embeddings shape {emb.shape}, expected {(space.n_articles, cfg.embedding_dim)}"
        )
    snap = pd.read_parquet(path / "customer_features.parquet")
    hist = np.load(path / "customer_history.npy")
    loaded = LoadedTwoTower(
        path=path,
        version=path.name,
        metadata=meta,
        space=space,
        config=cfg,
        model=model,
        article_table=table,
        encoder=NumpyQueryTower(model),
        index=ExactIndex(emb),
        article_stats=pd.read_parquet(path / "article_stats.parquet"),
        popular=json.loads((path / "popular.json").read_text()),
        customer_rows=pd.Index(snap["customer_id"].astype(str).to_numpy(dtype=object)),
        customer_static={c: snap[c].to_numpy() for c in STATIC_COLUMNS},
        customer_history=hist,
    )
    if warm:
        feats, _ = loaded.snapshot_features(["0" * 64])
        loaded.index.search(loaded.encode(feats), 10)
    return loaded
