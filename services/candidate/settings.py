"""Settings of the candidate stage: service settings (env ``HM_CANDIDATE_*``) and the
hyper-parameters of training and of the candidate filter (plain dataclasses, stored in
``metadata.json`` so a model says how it was made)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.config import get_paths
from shared.serving.app import ServiceSettings

MODEL_NAME = "two_tower"


class CandidateSettings(ServiceSettings):
    """The candidate service's settings (``HM_CANDIDATE_MODELS_DIR`` etc.; the shared ones —
    ``LOG_LEVEL``, ``POLL_INTERVAL_S``, ``MAX_IN_FLIGHT`` — are in ``shared.serving.app.ServiceSettings``)."""

    model_config = SettingsConfigDict(env_prefix="HM_CANDIDATE_", extra="ignore")

    models_dir: Path = Field(default_factory=lambda: get_paths().models_dir)
    # Pin a version (else CURRENT, else the newest complete one).
    model_version: str | None = None
    # Articles not sold in this many weeks before the model's cutoff are never proposed by the
    # two-tower (0: off); None: as the model's stage-one settings say (what was evaluated).
    not_sold_weeks: int | None = None
    # One query is a [1, dim] x [dim, n_articles] product: a single BLAS thread answers it in
    # ~1.5 ms at 105k articles, while several threads contend with each other and with the
    # server's own threads (measured 25 ms p50 on 2 busy cores). Concurrent requests still
    # use every core, one per request.
    blas_threads: int = Field(default=1, ge=1, le=64)


@dataclass
class TwoTowerTrainConfig:
    """Two-tower hyper-parameters. Defaults train on `small` in a few minutes on 2 cores."""

    embedding_dim: int = 64  # output of both towers (L2-normalised)
    id_dim: int = 32  # customer / article id embeddings
    cat_dim: int = 8  # each categorical attribute
    hidden: int = 128
    history_len: int = 20  # most recent purchases pooled into the query
    train_weeks: int = (
        26  # weeks before the cutoff that give training pairs (26 > 12 on small: 0.288 vs 0.243 recall@100)
    )
    batch_size: int = 1024
    epochs: int = 8
    learning_rate: float = 0.005
    # The id embedding tables (customer, article) learn with Adagrad: Adam's update rewrites
    # every row of a table each step (its moments decay densely), 684 ms per step for the
    # 1.37M-customer table against 3 ms with Adagrad, which touches only the batch's rows.
    id_learning_rate: float = 0.05
    temperature: float = 0.05  # logits = cosine / temperature
    id_dropout: float = 0.2  # share of queries trained with the OOV customer id
    postal_buckets: int = 2000
    patience: int = 2  # early stopping on validation recall@k
    val_k: int = 100
    val_customers: int = 5000  # validation customers sampled from the week after the cutoff
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FilterConfig:
    """The candidate filter; each rule can be switched off.

    - ``not_sold_weeks``: drop articles with no sale in the last N weeks before the cutoff
      (no longer sold). 0 or None switches it off.
    - ``price_band``: keep articles whose mean price lies within
      ``[p10 / price_slack, p90 * price_slack]`` of the customer's own purchase prices
      (customers without history are not filtered).
    - ``exclude_article_ids`` / ``exclude_attributes`` (e.g. ``{"index_group_name": ["Baby/Children"]}``).
    """

    not_sold_weeks: int | None = 8
    price_band: bool = False
    price_slack: float = 1.5
    exclude_article_ids: list[str] = field(default_factory=list)
    exclude_attributes: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


NO_FILTERS = FilterConfig(not_sold_weeks=None, price_band=False)
