"""/search (text JSON and image multipart), catalogue routes, health and metrics; the hostile
upload corpus (its form layer) at the gateway."""

from __future__ import annotations

import json

import pytest

from services.gateway.breaker import CLOSED, OPEN
from tests.gateway.gateway_fakes import ARTICLES, CUSTOMER_YOUNG, closed_port
from tests.hostile_corpus import hostile_cases, jpeg

A = ARTICLES
JPEG = b"\xff\xd8" + b"\x00" * 1000  # the fake search accepts anything starting like a JPEG


def ids(body: dict) -> list[str]:
    return [item["article_id"] for item in body["items"]]


# --- text search ---------------------------------------------------------------------------------


def test_text_search_is_proxied_enriched_and_cached(make_gateway, fakes):
    gw = make_gateway()
    query = {"query": "  black dress ", "k": 12, "filters": {"colour_group_name": ["Black"]}, "mode": "tfidf"}
    first = gw.post("/search", json=query)
    assert first.status_code == 200, first.text
    body = first.json()
    # fake results: A3, 0999999999 (unknown: dropped), A1, A5
    assert ids(body) == [A[2], A[0], A[4]] and body["kind"] == "text" and body["cached"] is False
    assert body["items"][0]["name"] == "Item 3" and body["facets"]["colour_group_name"][0]["value"] == "Black"
    sent = fakes.controls["search"].last_request
    assert sent["query"] == "black dress" and sent["mode"] == "tfidf"
    assert sent["filters"]["colour_group_name"] == ["Black"]
    second = gw.post("/search", json=query).json()
    assert second["cached"] is True and ids(second) == ids(body)
    assert fakes.controls["search"].calls == 1
    # another mode is another key
    gw.post("/search", json={**query, "mode": "semantic"})
    assert fakes.controls["search"].calls == 2


def test_text_search_pages_over_the_full_result_list(make_gateway, fakes):
    gw = make_gateway()
    body = gw.post("/search", json={"query": "dress", "k": 2, "offset": 1}).json()
    assert fakes.controls["search"].last_request["k"] == 100  # always the maximum: `total` is real
    # upstream: A3, 0999999999 (unknown, dropped), A1, A5 -> visible A3, A1, A5 -> from offset 1, 2 of them
    assert ids(body) == [A[0], A[4]] and body["total"] == 3


def test_personalised_search_passes_customer(make_gateway, fakes):
    gw = make_gateway()
    body = gw.post("/search", json={"query": "dress", "customer_id": CUSTOMER_YOUNG}).json()
    assert body["personalised"] is True
    assert fakes.controls["search"].last_request["customer_id"] == CUSTOMER_YOUNG


def test_search_down_is_503_for_search_only(make_gateway, fakes):
    gw = make_gateway()
    fakes.controls["search"].behaviour = "error"
    r = gw.post("/search", json={"query": "dress"})
    assert r.status_code == 503 and "search is unavailable" in r.json()["detail"]
    assert gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG}).status_code == 200
    unreachable = make_gateway(search_url=f"http://127.0.0.1:{closed_port()}")
    assert unreachable.post("/search", json={"query": "dress"}).status_code == 503
    assert unreachable.get("/recommend", params={"customer_id": CUSTOMER_YOUNG}).json()["source"] == "ranker"


@pytest.mark.parametrize(
    "payload",
    [
        {"query": ""},
        {"query": "   "},
        {"query": "x" * 257},
        {"query": "dress", "k": 0},
        {"query": "dress", "k": 101},
        {"query": "dress", "mode": "magic"},
        {"query": "dress", "customer_id": "nope"},
        {"query": "dress", "filters": {"colour": ["Black"]}},
        {"query": "dress", "unexpected": 1},
        {"k": 3},
    ],
)
def test_bad_text_queries_are_422(make_gateway, fakes, payload):
    gw = make_gateway()
    r = gw.post("/search", json=payload)
    assert r.status_code == 422, r.text
    assert fakes.controls["search"].calls == 0


def test_not_json_not_multipart_is_415_and_broken_json_422(make_gateway):
    gw = make_gateway()
    assert gw.post("/search", content=b"dress", headers={"content-type": "text/plain"}).status_code == 415
    assert gw.post("/search", content=b"{nope", headers={"content-type": "application/json"}).status_code == 422


def test_oversized_json_body_is_413(make_gateway):
    gw = make_gateway()
    r = gw.post("/search", content=b'{"query": "' + b"a" * 70_000 + b'"}', headers={"content-type": "application/json"})
    assert r.status_code == 413


# --- image search --------------------------------------------------------------------------------


def test_image_search_forwards_the_photo_and_options(make_gateway, fakes):
    gw = make_gateway()
    r = gw.post(
        "/search",
        files={"file": ("red.jpg", JPEG, "image/jpeg")},
        data={"k": "2", "filters": json.dumps({"product_type_name": ["Dress"]})},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "image" and ids(body) == [A[5], A[6]]
    sent = fakes.controls["search"].last_request
    assert sent["bytes"] == len(JPEG) and sent["k"] == 100 and sent["filename"] == "red.jpg"
    assert json.loads(sent["filters"]) == {"product_type_name": ["Dress"]}
    again = gw.post(
        "/search",
        files={"file": ("other-name.jpg", JPEG, "image/jpeg")},
        data={"k": "2", "filters": json.dumps({"product_type_name": ["Dress"]})},
    ).json()
    assert again["cached"] is True  # same bytes, same options: keyed by the image's hash


def test_image_search_passes_on_the_services_refusal(make_gateway):
    gw = make_gateway()
    r = gw.post("/search", files={"file": ("x.jpg", b"GIF89a not a jpeg", "image/jpeg")})
    assert r.status_code == 415 and "not a JPEG" in r.json()["detail"]


def test_image_search_passes_on_the_services_photos_pending_503(make_gateway, fakes):
    gw = make_gateway()
    fakes.controls["search"].behaviour = "photos_pending"
    for _ in range(6):  # a shed with Retry-After, not a failure: the image breaker stays closed
        r = gw.post("/search", files={"file": ("x.jpg", JPEG, "image/jpeg")})
        assert r.status_code == 503 and r.headers["Retry-After"] == "30"
        assert r.json()["detail"].startswith("indexing photos, 40 % (4800 of 12000)")
    assert fakes.controls["search"].calls == 6
    fakes.controls["search"].behaviour = "ok"
    r = gw.post("/search", files={"file": ("x.jpg", JPEG, "image/jpeg")})
    assert r.status_code == 200 and r.json()["kind"] == "image"


def test_image_over_the_limit_is_413_before_any_upstream_call(make_gateway, fakes):
    gw = make_gateway(max_upload_bytes=4096)
    r = gw.post("/search", files={"file": ("big.jpg", JPEG + b"\x00" * 70_000 + b"\x00" * 4096, "image/jpeg")})
    assert r.status_code == 413
    r = gw.post("/search", files={"file": ("big.jpg", JPEG + b"\x00" * 4096, "image/jpeg")})
    assert r.status_code == 413  # under the body allowance, over the image limit
    assert fakes.controls["search"].calls == 0


@pytest.mark.parametrize(
    "files,data",
    [
        (None, {"k": "3"}),  # no file
        ({"file": ("e.jpg", b"", "image/jpeg")}, {}),  # empty file
        ({"file": ("x.jpg", JPEG, "image/jpeg")}, {"filters": "{nope"}),  # filters not JSON
        ({"file": ("x.jpg", JPEG, "image/jpeg")}, {"k": "lots"}),
        ({"file": ("x.jpg", JPEG, "image/jpeg")}, {"customer_id": "zz"}),
    ],
)
def test_bad_image_requests_are_4xx(make_gateway, fakes, files, data):
    gw = make_gateway()
    if files is None:
        r = gw.post("/search", data=data, files={"other": ("a.txt", b"x", "text/plain")})
    else:
        r = gw.post("/search", files=files, data=data)
    assert 400 <= r.status_code < 500 and r.status_code == 422, r.text
    assert fakes.controls["search"].calls == 0


def test_malformed_multipart_is_400(make_gateway):
    gw = make_gateway()
    r = gw.post("/search", content=b"--xyz\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert r.status_code in (400, 422), r.text


# --- catalogue routes ----------------------------------------------------------------------------


def test_article_detail_pads_short_ids(make_gateway):
    gw = make_gateway()
    r = gw.get("/articles/100000001")  # a real copy lost the leading zero
    assert r.status_code == 200
    body = r.json()
    assert body["article_id"] == A[0] and body["description"] == "Description 1"
    assert body["attributes"]["garment_group_name"] == "Jersey"
    assert gw.get("/articles/0999999999").status_code == 404
    assert gw.get("/articles/abc").status_code == 422
    assert gw.get("/articles/12345678901").status_code == 422


def test_image_served_by_id_only(make_gateway):
    gw = make_gateway()
    r = gw.get(f"/articles/{A[0]}/image")
    assert r.status_code == 200 and r.content == b"\xff\xd8fake-jpeg-" + A[0].encode()
    assert r.headers["content-type"] == "image/jpeg"
    assert gw.get(f"/articles/{A[2]}/image").status_code == 404  # article without a photo
    assert gw.get("/articles/0999999999/image").status_code == 404  # unknown article


@pytest.mark.parametrize(
    "path",
    [
        "/articles/..%2F..%2F..%2Fetc%2Fpasswd/image",
        "/articles/%2e%2e/image",
        "/articles/../../etc/passwd",
        "/articles/100000001/image",  # 9 digits: images need the exact 10-digit id
        "/articles/010000000a/image",
        "/articles/0100000001.jpg/image",
        "/articles/0100000001%00/image",
    ],
)
def test_image_route_refuses_path_tricks(make_gateway, path):
    gw = make_gateway()
    r = gw.get(path)
    assert r.status_code in (404, 422), (path, r.status_code)
    assert b"root:" not in r.content


def test_customers_prefix_and_sample(make_gateway):
    gw = make_gateway()
    found = gw.get("/customers", params={"prefix": "AAA"}).json()  # case-insensitive hex
    assert [c["customer_id"][-1] for c in found] == ["1", "2"]
    assert found[0]["age"] == 22 and found[0]["age_band"] == "16-24" and found[0]["purchases"] == 3
    assert gw.get("/customers", params={"prefix": "aaa", "limit": 1}).json()[0]["customer_id"][-1] == "1"
    assert gw.get("/customers", params={"prefix": "f"}).json() == []
    # sample: most purchases first (mid 4, young 3, unknown-age 1)
    sample = gw.get("/customers").json()
    assert [c["purchases"] for c in sample] == [4, 3, 1]
    assert gw.get("/customers", params={"prefix": "zz"}).status_code == 422
    assert gw.get("/customers", params={"limit": 0}).status_code == 422
    assert gw.get("/customers", params={"limit": 51}).status_code == 422


def test_facets_count_the_catalogue(make_gateway):
    gw = make_gateway()
    body = gw.get("/facets").json()
    types = {f["value"]: f["count"] for f in body["facets"]["product_type_name"]}
    assert types == {"Dress": 4, "Trousers": 2, "Sweater": 2}
    assert body["facets"]["colour_group_name"][0] == {"value": "Black", "count": 4}
    assert body["price"] == {"min": pytest.approx(0.01), "max": pytest.approx(0.10)}


# --- health, metrics, page -----------------------------------------------------------------------


def test_readyz_reports_each_dependency(make_gateway):
    gw = make_gateway()
    r = gw.get("/readyz")
    assert r.status_code == 200
    deps = r.json()["dependencies"]
    assert set(deps) == {"candidate", "ranker", "search"}
    assert all(d["ready"] and d["model_version"] == "v1" and d["breaker"] == "closed" for d in deps.values())
    assert gw.get("/livez").json()["status"] == "ok"

    down = make_gateway(ranker_url=f"http://127.0.0.1:{closed_port()}")
    r = down.get("/readyz")
    assert r.status_code == 503
    assert r.json()["dependencies"]["ranker"]["ready"] is False
    assert r.json()["dependencies"]["candidate"]["ready"] is True


def test_metrics_count_routes_by_template(make_gateway):
    gw = make_gateway()
    gw.get("/recommend", params={"customer_id": CUSTOMER_YOUNG})
    gw.get(f"/articles/{A[0]}")
    gw.get("/recommend", params={"customer_id": "bad"})
    text = gw.get("/metrics").text
    # The shared HTTP metrics every service exposes (shared.serving.prometheus), labelled by service.
    assert 'hm_http_requests_total{method="GET",route="/recommend",service="gateway",status="200"} 1.0' in text
    assert 'hm_http_requests_total{method="GET",route="/recommend",service="gateway",status="422"} 1.0' in text
    assert 'route="/articles/{article_id}"' in text  # template, not the id
    assert 'hm_gateway_upstream_seconds_count{dependency="candidate",outcome="ok"} 1.0' in text
    assert "hm_gateway_dependency_ready" in text


def test_openapi_documents_both_search_bodies(make_gateway):
    gw = make_gateway()
    spec = gw.get("/openapi.json").json()
    content = spec["paths"]["/search"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert "GatewaySearchRequest" in spec["components"]["schemas"]
    assert "/articles/{article_id}/image" in spec["paths"]
    params = {p["name"]: p for p in spec["paths"]["/recommend"]["get"]["parameters"]}
    # customer_id or an anonymous session_id (POST /events): neither alone is required
    assert params["customer_id"]["required"] is False and params["session_id"]["required"] is False
    assert params["k"]["schema"]["maximum"] == 100
    assert {"colour_group_name", "price_min", "offset"} <= set(params)


def test_the_page_is_served_at_the_root(make_gateway):
    gw = make_gateway()
    page = gw.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'data-testid="customer-input"' in page.text
    assert gw.get("/app.js").status_code == 200 and gw.get("/style.css").status_code == 200


FORM_CASES = [(n, kw) for n, layer, kw in hostile_cases() if layer == "form"]


@pytest.mark.parametrize(("name", "kwargs"), FORM_CASES, ids=[c[0] for c in FORM_CASES])
def test_hostile_forms_are_4xx_at_the_gateway_without_an_upstream_call(make_gateway, fakes, name, kwargs):
    gw = make_gateway()
    r = gw.post("/search", **kwargs)
    assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:300])
    assert str(r.json()["detail"]).strip()
    assert fakes.controls["search"].calls == 0, f"{name} reached the search service"


def test_image_failures_do_not_open_text_search(make_gateway, fakes):
    gw = make_gateway(breaker_failure_threshold=2, breaker_reset_s=60)
    fakes.controls["search"].behaviour = "error"
    for _ in range(3):
        r = gw.post("/search", files={"file": ("p.jpg", jpeg(), "image/jpeg")})
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1  # a 503 always says when to retry
    fakes.controls["search"].behaviour = "ok"
    assert gw.post("/search", files={"file": ("p.jpg", jpeg(), "image/jpeg")}).status_code == 503  # image: open
    assert gw.post("/search", json={"query": "dress"}).status_code == 200  # text: its own breaker
    breakers = gw.app.state.gateway.clients["search"].breaker.states()
    assert breakers["image"] == OPEN and breakers["text"] == CLOSED


def test_refused_photos_never_open_the_image_breaker(make_gateway, fakes):
    gw = make_gateway(breaker_failure_threshold=2, breaker_reset_s=60)
    for _ in range(10):  # the fake search refuses anything that is not a JPEG with 415
        assert gw.post("/search", files={"file": ("x.png", b"\x89PNG not really", "image/png")}).status_code == 415
    assert gw.post("/search", files={"file": ("p.jpg", jpeg(), "image/jpeg")}).status_code == 200
