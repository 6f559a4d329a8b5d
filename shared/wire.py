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
from typing import Any, TypeVar

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


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


def body_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a body read by :func:`json_body` (FastAPI cannot see it),
    so the OpenAPI document, and what clients and fuzzers generate from it, is unchanged."""
    schema = _inline_refs(model.model_json_schema(), model.model_json_schema().get("$defs", {}))
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


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
