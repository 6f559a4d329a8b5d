"""Hostile input never reaches a 500: random query strings and bodies (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway.gateway_fakes import CUSTOMER_YOUNG

NAMES = ["customer_id", "k", "offset", "colour_group_name", "product_type_name", "price_min", "price_max", "x"]
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
values = st.one_of(
    text, st.integers(-(10**12), 10**12).map(str), st.just(CUSTOMER_YOUNG), st.floats(allow_nan=True).map(str)
)


@pytest.fixture(scope="module")
def gw_module(fakes, tmp_path_factory):
    from fastapi.testclient import TestClient

    from services.gateway.app import create_app
    from services.gateway.settings import GatewaySettings
    from tests.gateway.gateway_fakes import tiny_catalogue

    tmp = tmp_path_factory.mktemp("hostile")
    settings = GatewaySettings(
        candidate_url=fakes.url("candidate"),
        ranker_url=fakes.url("ranker"),
        search_url=fakes.url("search"),
        redis_url="",
        health_interval_s=60,
        data_dir=tmp,
        log_level="WARNING",
    )
    with TestClient(create_app(settings, catalogue=tiny_catalogue(tmp / "images"))) as client:
        yield client


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(NAMES), values), max_size=6))
def test_recommend_answers_200_or_422(gw_module, params):
    r = gw_module.get("/recommend", params=params)
    assert r.status_code in (200, 422), (params, r.status_code, r.text[:300])
    if r.status_code == 422:
        assert r.json()["detail"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.dictionaries(
            st.sampled_from(["query", "k", "offset", "filters", "mode", "customer_id"]), json_values, max_size=5
        ),
        json_values,
    )
)
def test_search_json_never_500(gw_module, body):
    if body is None:  # json=None sends no body and no content type
        r, allowed = gw_module.post("/search", json=None), (415,)
    else:
        # Encode ourselves: Python writes NaN/Infinity literals that strict JSON clients refuse to
        # send, but a hostile client can, and the gateway must answer them with a 4xx too.
        r = gw_module.post("/search", content=json.dumps(body), headers={"content-type": "application/json"})
        allowed = (200, 400, 413, 422)
    assert r.status_code in allowed, (body, r.status_code, r.text[:300])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.binary(max_size=2000),
    st.sampled_from(["application/json", "multipart/form-data; boundary=x", "multipart/form-data", "text/plain", ""]),
)
def test_search_raw_bytes_never_500(gw_module, body, content_type):
    r = gw_module.post("/search", content=body, headers={"content-type": content_type})
    assert 400 <= r.status_code < 500, (body[:50], content_type, r.status_code, r.text[:300])
