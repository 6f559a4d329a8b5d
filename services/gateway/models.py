"""The gateway's public response shapes (OpenAPI); requests reuse ``shared.contract.schemas``."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.gateway.event_store import SessionId, anonymous_customer_id
from shared.contract.schemas import (
    FILTER_COLUMNS,
    MAX_RESULTS_K,
    CustomerId,
    SearchFilters,
    TextSearchRequest,
)


class RecommendQuery(SearchFilters):
    """/recommend's query string: customer, page, and SearchFilters' fields (lists repeat).

    It extends ``SearchFilters`` so the filter fields and their bounds are declared once.
    """

    # Unknown query parameters are ignored (links carry tracking parameters), unlike JSON bodies.
    model_config = ConfigDict(extra="ignore")

    customer_id: CustomerId | None = Field(None, description="64 lowercase hex characters")
    # An anonymous visitor's cookie (POST /events): the feed of an unknown customer, seeded by it.
    session_id: SessionId | None = Field(None, description="anonymous session (8-64 of A-Z a-z 0-9 _ -)")
    k: int = Field(12, ge=1, le=MAX_RESULTS_K)
    offset: int = Field(0, ge=0, le=1000)

    @model_validator(mode="after")
    def _someone(self) -> RecommendQuery:
        if self.customer_id is None and self.session_id is None:
            raise ValueError("give customer_id or session_id")
        return self

    def filters(self) -> SearchFilters:
        return SearchFilters(**self.model_dump(include=set(SearchFilters.model_fields), exclude_none=True))

    def served_customer_id(self) -> str:
        """Who the services are asked about: the customer, or the anonymous session's stand-in."""
        return self.customer_id or anonymous_customer_id(self.session_id or "")


_LIST_FIELDS = frozenset(FILTER_COLUMNS)


def parse_recommend_query(request: Request) -> RecommendQuery:
    params = request.query_params
    raw: dict[str, Any] = {}
    for name in RecommendQuery.model_fields:
        if name in _LIST_FIELDS:
            values = params.getlist(name)
            if values:
                raw[name] = values
        elif name in params:
            raw[name] = params[name]
    try:
        return RecommendQuery.model_validate(raw)
    except ValidationError as exc:
        raise HTTPException(422, detail=[{"loc": ["query", *e["loc"]], "msg": e["msg"]} for e in exc.errors()]) from exc


def _openapi_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        prop.pop("title", None)
        out.append(
            {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", []),
                "explode": True,
                "schema": prop,
                "description": prop.pop("description", ""),
            }
        )
    return out


RECOMMEND_PARAMETERS = _openapi_parameters(RecommendQuery)


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
        "popular: candidates unavailable (or none returned), the customer's age band's best sellers"
    )
    ordering: str | None = Field(
        None,
        description="The order served: mmoe (the trained ranker), "
        "baseline:<name> (the publish gate kept a baseline's order), "
        "stage_one (ranker unavailable), null (popular fallback)",
    )
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


class PartStatus(BaseModel):
    state: Literal["ready", "warming", "unavailable"]
    message: str
    progress: float | None = Field(None, ge=0, le=1, description="How far a warming part is (photos indexed).")


class BackgroundStep(BaseModel):
    name: str
    state: str
    seconds: float | None = None


class BackgroundStatus(BaseModel):
    phase: str | None
    steps: list[BackgroundStep]


class StatusResponse(BaseModel):
    ready: bool = Field(description="Every part serves at full quality.")
    warming: bool = Field(description="Some part is still warming up (the page shows a notice).")
    parts: dict[str, PartStatus] = Field(description="feed, text_search, image_search")
    background: BackgroundStatus | None = Field(None, description="The full-quality steps of a running `hmrec run`.")
