"""What the page needs from the catalogue: customers, article details and photos, facets."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import FileResponse

from services.gateway.models import ArticleDetail, CustomerSummary, FacetsResponse
from services.gateway.routes.deps import StateDep

router = APIRouter(tags=["catalogue"])

ARTICLE_ID_PATH = r"^[0-9]{1,10}$"
IMAGE_ID_PATH = r"^[0-9]{10}$"


@router.get("/customers", response_model=list[CustomerSummary])
async def customers(
    state: StateDep,
    prefix: Annotated[str, Query(pattern=r"^[0-9a-fA-F]{0,64}$", description="Start of the id (hex)")] = "",
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[dict[str, Any]]:
    """Customers whose id starts with ``prefix``; without a prefix, a sample of active ones."""
    if not prefix:
        return state.catalogue.sample_customers(limit)
    return state.catalogue.customers_with_prefix(prefix.lower(), limit)


@router.get("/articles/{article_id}", response_model=ArticleDetail)
async def article(state: StateDep, article_id: Annotated[str, Path(pattern=ARTICLE_ID_PATH)]) -> dict[str, Any]:
    detail = state.catalogue.detail(article_id.zfill(10))
    if detail is None:
        raise HTTPException(404, detail=f"no article {article_id.zfill(10)}")
    return detail


@router.get(
    "/articles/{article_id}/image", response_class=FileResponse, responses={200: {"content": {"image/jpeg": {}}}}
)
def article_image(
    state: StateDep,
    article_id: Annotated[str, Path(pattern=IMAGE_ID_PATH, description="Exactly 10 digits")],
) -> FileResponse:
    """The article's photo. The path is built from the validated id, never taken from the request."""
    path = state.catalogue.image_path(article_id)
    if path is None or not path.is_file():
        raise HTTPException(404, detail=f"no photo for article {article_id}")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/facets", response_model=FacetsResponse)
async def facets(state: StateDep) -> dict[str, Any]:
    """Filterable attribute values with their catalogue counts, and the price range."""
    return {"facets": state.catalogue.facets, "price": state.catalogue.price_range()}
