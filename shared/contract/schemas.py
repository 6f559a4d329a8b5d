"""Request and response models that cross service boundaries (HTTP only, never imports).

Identifiers are validated at the edge: a customer id is 64 lowercase hex characters; an
article id is up to 10 digits (real copies lose leading zeros) and is normalised to the
10-character zero-padded form.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

CUSTOMER_ID_PATTERN = r"^[0-9a-f]{64}$"
ARTICLE_ID_PATTERN = r"^[0-9]{1,10}$"

MAX_CANDIDATES_K = 1000
MAX_RANK_INPUT = 2000
MAX_RESULTS_K = 100
MAX_QUERY_CHARS = 256


def _pad_article_id(value: str) -> str:
    return value.zfill(10)


CustomerId = Annotated[str, StringConstraints(pattern=CUSTOMER_ID_PATTERN)]
ArticleId = Annotated[str, StringConstraints(pattern=ARTICLE_ID_PATTERN), AfterValidator(_pad_article_id)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoredArticle(StrictModel):
    article_id: ArticleId
    score: float


# Stage one's candidate sources (services/candidate/stage_one.py); the ranker reads one
# feature per source, so producer and consumer share these names.
CANDIDATE_SOURCES: tuple[str, ...] = ("two_tower", "repurchase", "copurchase", "variant", "trending", "popular")
CandidateSource = Literal["two_tower", "repurchase", "copurchase", "variant", "trending", "popular"]
# A source's own score: >= 0 (0 = not proposed), finite, bounded like the ranker's feature clip.
SourceScore = Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]


class Candidate(StrictModel):
    """A stage-one candidate: the two-tower cosine as ``score`` and each source's own score
    (only the sources that proposed it; absent = 0)."""

    article_id: ArticleId
    score: float
    sources: dict[CandidateSource, SourceScore] = Field(default_factory=dict)


# --- candidate service -------------------------------------------------------------------


class CandidateRequest(StrictModel):
    customer_id: CustomerId
    k: int = Field(100, ge=1, le=MAX_CANDIDATES_K)
    recent_article_ids: list[ArticleId] | None = Field(None, max_length=200)


class CandidateResponse(BaseModel):
    customer_id: str
    model_version: str
    cold_start: bool
    candidates: list[Candidate]


# --- ranker service ----------------------------------------------------------------------


class RankRequest(StrictModel):
    customer_id: CustomerId
    candidates: list[Candidate] = Field(..., max_length=MAX_RANK_INPUT)
    k: int = Field(12, ge=1, le=MAX_RANK_INPUT)
    # The session's articles, strongest first (the gateway's, as sent to /candidates): ranked
    # as bought today (services/ranker/session_features.py).
    recent_article_ids: list[ArticleId] | None = Field(None, max_length=200)


class RankedArticle(BaseModel):
    article_id: str
    score: float
    task_scores: dict[str, float]


class RankResponse(BaseModel):
    model_version: str
    # "mmoe": the trained ranker; "baseline:<name>": the publish gate found the MMoE worse
    # than that baseline and serves the baseline's order of the same candidates instead.
    ordering: str = "mmoe"
    ranked: list[RankedArticle]


# --- search service ----------------------------------------------------------------------

FILTER_COLUMNS: tuple[str, ...] = (
    "product_type_name",
    "product_group_name",
    "colour_group_name",
    "perceived_colour_master_name",
    "department_name",
    "index_group_name",
    "graphical_appearance_name",
    "garment_group_name",
)

FilterValue = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class SearchFilters(StrictModel):
    """Catalogue attribute filters; each list means 'any of these values'."""

    product_type_name: list[FilterValue] | None = Field(None, max_length=50)
    product_group_name: list[FilterValue] | None = Field(None, max_length=50)
    colour_group_name: list[FilterValue] | None = Field(None, max_length=50)
    perceived_colour_master_name: list[FilterValue] | None = Field(None, max_length=50)
    department_name: list[FilterValue] | None = Field(None, max_length=50)
    index_group_name: list[FilterValue] | None = Field(None, max_length=50)
    graphical_appearance_name: list[FilterValue] | None = Field(None, max_length=50)
    garment_group_name: list[FilterValue] | None = Field(None, max_length=50)
    # NaN and Infinity are JSON extensions some clients send: refused, not silently matched.
    price_min: float | None = Field(None, ge=0, allow_inf_nan=False)
    price_max: float | None = Field(None, ge=0, allow_inf_nan=False)


SearchMode = Literal["hybrid", "tfidf", "semantic"]


class TextSearchRequest(StrictModel):
    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY_CHARS)]
    k: int = Field(12, ge=1, le=MAX_RESULTS_K)
    filters: SearchFilters = Field(default_factory=SearchFilters)
    customer_id: CustomerId | None = None
    mode: SearchMode = "hybrid"


class FacetValue(BaseModel):
    value: str
    count: int


class SearchResponse(BaseModel):
    index_version: str
    mode: str
    personalised: bool = False
    results: list[ScoredArticle]
    facets: dict[str, list[FacetValue]]
