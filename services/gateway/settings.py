"""Gateway settings (env prefix ``HM_GATEWAY_``): where the services are, how long to wait
for them, when to give up on them (circuit breaker), and how to cache their answers."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

import shared.config
import shared.serving.redis_client
from shared.serving.app import ServiceSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


class GatewaySettings(ServiceSettings):
    """The gateway's settings (``HM_GATEWAY_*``; the shared ones are in
    ``shared.serving.app.ServiceSettings``)."""

    model_config = SettingsConfigDict(env_prefix="HM_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    # --- the services behind the gateway --------------------------------------------------
    candidate_url: str = "http://127.0.0.1:8001"
    ranker_url: str = "http://127.0.0.1:8002"
    search_url: str = "http://127.0.0.1:8003"
    # Per-call budgets. The ranker's goal is p99 < 20 ms and the candidate's < 10 ms in
    # process; these leave room for HTTP and a busy machine without letting a stuck service
    # hold a request for long. Image search embeds a photo on the CPU (p99 goal 150 ms).
    connect_timeout_s: float = Field(0.5, gt=0)
    candidate_timeout_s: float = Field(1.0, gt=0)
    ranker_timeout_s: float = Field(1.0, gt=0)
    search_timeout_s: float = Field(2.0, gt=0)
    search_image_timeout_s: float = Field(5.0, gt=0)
    health_timeout_s: float = Field(1.0, gt=0)
    # How often dependency /readyz (and model versions) are polled.
    health_interval_s: float = Field(2.0, gt=0)

    # --- circuit breaker (one per dependency) ---------------------------------------------
    breaker_failure_threshold: int = Field(5, ge=1)
    breaker_reset_s: float = Field(5.0, gt=0)

    # --- cache ------------------------------------------------------------------------------
    # Empty string: no Redis at all, in-process cache only. A Redis Cluster:
    # redis+cluster://host:port,host:port (seed nodes; see shared/serving/redis_client.py).
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Short, but not so short that a busy machine's scheduling delay reads as "Redis down".
    redis_socket_timeout_s: float = Field(0.1, gt=0)
    # While Redis is down, try it again at most this often (requests never wait on it).
    redis_retry_interval_s: float = Field(2.0, gt=0)
    cache_ttl_s: int = Field(300, ge=1)
    local_cache_max_entries: int = Field(10_000, ge=1)
    cache_prefix: str = "hm:gw:v1"

    # --- recommendation ---------------------------------------------------------------------
    # Candidates fetched per request (and handed to the ranker); filters and paging cut
    # them down afterwards, so this bounds how deep a page can go.
    # Stage one's whole list (its sources give ~200 at most): the ranker must see what the
    # offline evaluation scored, so the gateway does not cut it.
    num_candidates: int = Field(1000, ge=1, le=1000)
    max_k: int = Field(100, ge=1, le=100)
    max_offset: int = Field(500, ge=0)
    popular_weeks: int = Field(2, ge=1)
    popular_per_band: int = Field(500, ge=1)

    # --- uploads ------------------------------------------------------------------------------
    max_upload_bytes: int = Field(8 * 1024 * 1024, ge=1024)

    # --- files ------------------------------------------------------------------------------------
    data_dir: Path = Field(default_factory=lambda: shared.config.get_paths().data_dir)
    # The data layer's parquet cache lives in <output_dir>/data (shared with the pipeline).
    output_dir: Path = Field(default_factory=lambda: shared.config.get_paths().output_dir)
    frontend_dir: Path = REPO_ROOT / "frontend"
    # /readyz with each dependency's URL and error text (operators); off: states and versions only.
    readyz_details: bool = False
    # The gateway only awaits I/O, so it holds more requests at once than a model service.
    max_in_flight: int = Field(default=64, ge=1)

    @field_validator("candidate_url", "ranker_url", "search_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # Several replicas: comma-separated URLs (services/gateway/replicas.py).
        for part in value.split(","):
            if not part.strip().startswith(("http://", "https://")):
                raise ValueError(f"expected an http(s) URL (or several, comma-separated), got {value!r}")
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value:
            shared.serving.redis_client.parse_redis_url(value)  # ValueError says what is wrong
        return value

    @model_validator(mode="after")
    def _image_budget_covers_text(self) -> GatewaySettings:
        if self.search_image_timeout_s < self.search_timeout_s:
            raise ValueError("search_image_timeout_s must be >= search_timeout_s")
        return self
