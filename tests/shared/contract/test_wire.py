"""The internal hops' JSON helpers: one-pass body validation with FastAPI's 422s, and a
documented body schema that needs no component references."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from shared.contract.schemas import RankRequest
from shared.contract.wire import body_openapi, dumps, json_body, json_bytes

Body = Annotated[RankRequest, Depends(json_body(RankRequest))]


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/rank", openapi_extra=body_openapi(RankRequest))
    def rank(request: Body) -> object:
        return json_bytes(dumps({"n": len(request.candidates), "first": request.candidates[0].article_id}))

    return app


def test_a_valid_body_is_parsed_with_the_models_own_normalisation() -> None:
    with TestClient(_app()) as client:
        r = client.post(
            "/rank", json={"customer_id": "a" * 64, "k": 2, "candidates": [{"article_id": "108775015", "score": 0.5}]}
        )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"n": 1, "first": "0108775015"}  # ids padded to 10 digits, as before


def test_bad_bodies_are_422_located_under_body() -> None:
    with TestClient(_app()) as client:
        bad_id = client.post("/rank", json={"customer_id": "a" * 64, "candidates": [{"article_id": "x1", "score": 1}]})
        not_json = client.post("/rank", content=b"{not json", headers={"content-type": "application/json"})
        empty = client.post("/rank", content=b"")
        not_utf8 = client.post("/rank", content=b"\xff\x12\xfe{", headers={"content-type": "application/json"})
    assert bad_id.status_code == 422
    assert bad_id.json()["detail"][0]["loc"] == ["body", "candidates", 0, "article_id"]
    assert not_json.status_code == 422 and not_json.json()["detail"][0]["type"] == "json_invalid"
    assert empty.status_code == 422
    assert not_utf8.status_code == 422 and not_utf8.json()["detail"][0]["loc"] == ["body"]  # not a 500 (fuzz found it)


def test_the_body_schema_is_documented_inline() -> None:
    spec = _app().openapi()
    schema = spec["paths"]["/rank"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "$ref" not in str(schema) and "$defs" not in schema
    assert schema["properties"]["candidates"]["items"]["properties"]["article_id"]["pattern"] == "^[0-9]{1,10}$"
    assert set(schema["required"]) == {"customer_id", "candidates"}
