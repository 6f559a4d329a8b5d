"""Ranker fixtures: a hand-made shop (numbers checkable by hand) and exported artifacts.

Most tests use an artifact whose MMoE has random (seeded) weights exported straight to
NumPy: the serving, re-rank and service code paths are the same as for a trained model and
no TensorFlow training is needed. One slow test trains the real thing on the tiny world.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.ranker.features import FEATURE_NAMES, build_feature_store
from services.ranker.model import DEFAULT_TASKS, MMoEConfig, NumpyMMoE
from services.ranker.train import RankerTrainConfig, TrainResult, export_ranker

C1 = "a" * 64  # age 30, three purchases
C2 = "b" * 64  # age unknown, one purchase
C3 = "c" * 64  # age 60, no purchases before the cutoff
A1, A2, A3, A4 = "0000000001", "0000000002", "0000000003", "0000000004"
CUTOFF = date(2020, 9, 16)


def hand_shop() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Four articles (A1, A2 share product code 1; A1-A3 are 'Trousers'), three customers."""
    articles = pd.DataFrame(
        {
            "article_id": [A1, A2, A3, A4],
            "product_code": [1, 1, 2, 3],
            "product_type_name": ["Trousers", "Trousers", "Trousers", "Sweater"],
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": [C1, C2, C3],
            "age": np.array([30.0, np.nan, 60.0], dtype=np.float32),
        }
    )
    tx = pd.DataFrame(
        {
            "t_dat": pd.to_datetime(
                [
                    "2020-09-01",  # C1 A1 (15 days before the cutoff), store
                    "2020-09-10",  # C1 A1 again (6 days), online
                    "2020-09-15",  # C1 A3 (1 day), online
                    "2020-08-10",  # C2 A1 (37 days), store
                    "2020-09-16",  # C3 A2 ON the cutoff: label week, never a feature
                    "2020-09-20",  # C1 A4 in the label week
                ]
            ),
            "customer_id": [C1, C1, C1, C2, C3, C1],
            "article_id": [A1, A1, A3, A1, A2, A4],
            "price": np.array([0.02, 0.02, 0.05, 0.03, 0.04, 0.10], dtype=np.float32),
            "sales_channel_id": np.array([1, 2, 2, 1, 2, 2], dtype=np.int8),
        }
    )
    return articles, customers, tx


@pytest.fixture(scope="session")
def shop() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return hand_shop()


@pytest.fixture(scope="session")
def shop_store(shop):  # type: ignore[no-untyped-def]
    articles, customers, tx = shop
    return build_feature_store(tx, customers, articles, CUTOFF)


def random_model(seed: int = 0, n_experts: int = 4) -> NumpyMMoE:
    """An MMoE with seeded random weights in the exported (NumPy) form."""
    rng = np.random.default_rng(seed)
    cfg = MMoEConfig(
        n_features=len(FEATURE_NAMES), tasks=list(DEFAULT_TASKS), n_experts=n_experts, expert_units=8, tower_units=4
    )
    d, u, e = cfg.n_features, cfg.expert_units, cfg.n_experts
    w = {"expert_kernel": rng.normal(0, 0.3, (d, u, e)), "expert_bias": rng.normal(0, 0.1, (u, e))}
    for t in cfg.task_names:
        w[f"gate_kernel/{t}"] = rng.normal(0, 0.3, (d, e))
        w[f"gate_bias/{t}"] = rng.normal(0, 0.1, e)
        w[f"tower_w1/{t}"] = rng.normal(0, 0.3, (u, cfg.tower_units))
        w[f"tower_b1/{t}"] = np.zeros(cfg.tower_units)
        w[f"tower_w2/{t}"] = rng.normal(0, 0.3, (cfg.tower_units, 1))
        w[f"tower_b2/{t}"] = np.zeros(1)
    return NumpyMMoE(cfg, w, np.zeros(d), np.ones(d))


def export_random_ranker(
    models_dir: Path,
    store,
    version: str,
    seed: int = 0,  # type: ignore[no-untyped-def]
    make_current: bool = True,
) -> Path:
    model = random_model(seed)
    result = TrainResult(
        model=model,
        history=[{"epoch": 1, "loss": 1.0, "val_auc_purchase": 0.5, "val_map12": 0.1}],
        best_epoch=1,
        gate_usage={t: [0.25] * 4 for t in model.task_names},
        score_weights={"purchase": 1.0, "online": 0.25},
        metrics={"val_map12": 0.1},
        config=RankerTrainConfig(),
    )
    return export_ranker(result, store, models_dir, version, {"candidates_per_customer": 20}, make_current=make_current)


@pytest.fixture()
def models_dir(tmp_path: Path, shop_store) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path / "models"
    export_random_ranker(root, shop_store, "v1")
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The synthetic tiny world (no images), loaded."""
    from pipeline.synthetic import generate_world
    from shared.data import load_dataset

    out = tmp_path_factory.mktemp("ranker_tiny")
    generate_world(out, scale="tiny", seed=0, images=False)
    return load_dataset(out)
