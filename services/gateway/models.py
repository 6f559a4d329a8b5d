"""The gateway's public response shapes (OpenAPI); requests reuse ``shared.schemas``."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.schemas import MAX_RESULTS_K, TextSearchRequest


class ArticleCard(BaseModel):
    article_id: str
    name: str
    product_type: str
    product_group: str
    colour: str
    perceived_colour: str
    department: str
    index_group: str
    price: float | None = Field(None, description="Mean transaction price (the data set's scaled units)")
    image_url: str | None
    score: float | None = None


class ArticleDetail(ArticleCard):
    attributes: dict[str, str]
    description: str


class RecommendResponse(BaseModel):
    customer_id: str
    source: Literal["ranker", "candidates", "popular"] = Field(
        description="ranker: re-ranked; candidates: ranker unavailable, candidate order; "
                    "popular: candidates unavailable, the customer's age band's best sellers")
    cached: bool
    degraded: list[str] = Field(description="Dependencies that failed for this response")
    cold_start: bool | None = None
    age_band: str | None = None
    model_versions: dict[str, str | None]
    k: int
    offset: int
    total: int = Field(description="Items available for this request after filters (for paging)")
    items: list[ArticleCard]


class GatewaySearchRequest(TextSearchRequest):
    """A text search: the search service's request plus paging."""

    offset: int = Field(0, ge=0, le=MAX_RESULTS_K - 1)


class SearchResult(BaseModel):
    kind: Literal["text", "image"]
    source: Literal["search"] = "search"
    cached: bool
    degraded: list[str] = Field(default_factory=list)
    mode: str
    personalised: bool
    index_version: str | None
    k: int
    offset: int
    total: int
    items: list[ArticleCard]
    facets: dict[str, list[dict[str, str | int]]]


class CustomerSummary(BaseModel):
    customer_id: str
    age: int | None
    age_band: str
    purchases: int


class FacetsResponse(BaseModel):
    facets: dict[str, list[dict[str, str | int]]]
    price: dict[str, float | None]
