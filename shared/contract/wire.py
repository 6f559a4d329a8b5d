"""The JSON that crosses internal hops, written and read without detours.

A route that returns a pydantic model pays three times per answer: the objects are built,
FastAPI validates them again as the response model, then encodes them. For a list of 200
candidates that cost more than computing it. Routes on the hot path therefore write their
answer as bytes (orjson) in the documented shape, and return it as is (``json_bytes``); the
response model stays declared, so the OpenAPI document, and the tests that check answers
against it, are unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, model_validator

from shared.contract.schemas import (
    MAX_RANK_INPUT,
    ArticleId,
    CandidateSource,
    CustomerId,
    SourceScore,
    StrictModel,
)

M = TypeVar("M", bound=BaseModel)

# --- the columns wire of /candidates and /rank ------------------------------------------------
#
# ``?wire=columns`` on ``POST /candidates`` and ``POST /rank``: the same lists as one array per
# field instead of one JSON object per candidate. What the gateway sends and reads: for ~200
# candidates the objects (and their ``sources`` and ``task_scores`` dicts) were ~65 KB per
# request over the two hops, written, sent and parsed three times; as columns ~25 KB, and the
# ranker reads them into arrays without a loop. The values are the same numbers: scores as the
# float64 the objects carry, sources as the float32 the ranker reads them as (shortest repr,
# which parses back to the same float32). ``?wire=objects`` (the default) is unchanged.

Wire = Literal["objects", "columns"]


class CandidateColumns(BaseModel):
    """``POST /candidates?wire=columns``: CandidateResponse as columns, in stage-one order.
    ``sources``: each source's score per candidate (0 = that source did not propose it)."""

    customer_id: str
    model_version: str
    cold_start: bool
    article_ids: list[str]
    scores: list[float]
    sources: dict[CandidateSource, list[float]]


class RankColumnsRequest(StrictModel):
    """``POST /rank?wire=columns``: RankRequest with its candidates as columns (row i of every
    column is candidate i; a ``sources`` column left out is all 0)."""

    customer_id: CustomerId
    article_ids: list[ArticleId] = Field(..., max_length=MAX_RANK_INPUT)
    scores: list[float] = Field(..., max_length=MAX_RANK_INPUT)
    sources: dict[CandidateSource, list[SourceScore]] = Field(default_factory=dict)
    k: int = Field(12, ge=1, le=MAX_RANK_INPUT)
    recent_article_ids: list[ArticleId] | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _same_lengths(self) -> RankColumnsRequest:
        n = len(self.article_ids)
        if len(self.scores) != n or any(len(v) != n for v in self.sources.values()):
            raise ValueError("article_ids, scores and every sources column must have the same length")
        return self


class RankColumns(BaseModel):
    """``POST /rank?wire=columns``: RankResponse as columns, best first, without task scores."""

    model_version: str
    ordering: str = "mmoe"
    article_ids: list[str]
    scores: list[float]


def json_bytes(body: bytes, status_code: int = 200) -> Response:
    """An ``application/json`` response of bytes already encoded."""
    return Response(content=body, status_code=status_code, media_type="application/json")


def dumps(value: Any) -> bytes:
    """Compact JSON; numpy scalars and arrays are written as numbers and lists."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def loads(raw: bytes | str) -> Any:
    return orjson.loads(raw)


def json_body(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A FastAPI dependency: the request body parsed and validated by pydantic-core in one
    pass (``model_validate_json``). FastAPI's own body handling decodes the JSON in Python
    first and validates the objects after: for 200 candidates about three times the CPU.
    Invalid bodies are the same 422 as FastAPI's (errors located under ``body``)."""

    async def parse(request: Request) -> M:
        raw = await request.body()
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            raise RequestValidationError([_located(e) for e in exc.errors(include_url=False)]) from None

    return parse


def _located(error: Any) -> dict[str, Any]:
    """A pydantic error as FastAPI reports a body's: under ``body``, and with an input the
    422 can be written as JSON (a body that is not UTF-8 comes back as the bytes it was)."""
    out = {**error, "loc": ("body", *error["loc"])}
    if isinstance(out.get("input"), bytes | bytearray):
        out["input"] = bytes(out["input"]).decode("utf-8", "replace")
    return out


def body_openapi(*models: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a body read by :func:`json_body` (FastAPI cannot see it),
    so the OpenAPI document, and what clients and fuzzers generate from it, is unchanged.
    Several models (a route that reads either, e.g. by ``wire``): any of their schemas."""
    schemas = [_inline_schema(m) for m in models]
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = _inline_refs(model.model_json_schema(), model.model_json_schema().get("$defs", {}))
    schema.pop("$defs", None)
    return schema


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """Replace ``{"$ref": "#/$defs/X"}`` by X's schema (the request models are not recursive)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node
