"""The search service over HTTP: health, text and image routes, and every bad-input case
with its status and message."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from services.search.upload import UploadError, decode_upload
from tests.search.conftest import CUSTOMER_A, UNKNOWN_CUSTOMER


def _jpeg(size: tuple[int, int] = (60, 90), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header that claims width x height pixels, with a tiny (empty) data chunk:
    ~60 bytes on the wire, gigapixels if a decoder believed it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (0, 0, 255)).save(buf, format="GIF")
    return buf.getvalue()


# --- decode_upload on its own -----------------------------------------------------------------


def test_decode_accepts_jpeg_png_webp() -> None:
    for fmt in ("JPEG", "PNG", "WEBP"):
        buf = io.BytesIO()
        Image.new("RGB", (32, 48), (10, 200, 10)).save(buf, format=fmt)
        assert decode_upload(buf.getvalue(), 40_000_000).size == (32, 48)


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"", 400, "empty"),
        (b"this is plain text, not a photo", 415, "JPEG, PNG or WebP"),
        (_gif(), 415, "JPEG, PNG or WebP"),  # a real image, but not a decoder we allow
        (_png_claiming(100_000, 100_000), 413, "pixels"),  # 10 gigapixels
        (_jpeg()[:300], 400, "truncated"),  # cut inside the header
        (_jpeg()[:-50], 400, "truncated"),  # header fine, image data cut short
    ],
)
def test_decode_refuses_bad_uploads(data: bytes, status: int, message: str) -> None:
    with pytest.raises(UploadError) as info:
        decode_upload(data, 40_000_000)
    assert info.value.status == status and message in info.value.message


def test_a_real_photo_cut_in_half_is_400(hm_sample_dir: Path) -> None:
    photo = (hm_sample_dir / "images" / "012" / "0129085001.jpg").read_bytes()
    with pytest.raises(UploadError) as info:
        decode_upload(photo[: len(photo) // 2], 40_000_000)
    assert info.value.status == 400 and "truncated" in info.value.message


def test_decode_bomb_limit_is_the_product_photo_limit_not_pillows() -> None:
    # 7,000 x 7,000 = 49 MP: under Pillow's default 89 MP, over our 40 MP.
    with pytest.raises(UploadError) as info:
        decode_upload(_png_claiming(7_000, 7_000), 40_000_000)
    assert info.value.status == 413 and "49,000,000" in info.value.message


# --- over HTTP --------------------------------------------------------------------------------


def test_health(client) -> None:
    assert client.get("/livez").json() == {"status": "ok", "service": "search"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True and body["articles"] == 125 and body["photos"] == 124 and body["image_search"]


def test_text_search_over_http(client) -> None:
    r = client.post(
        "/search/text",
        json={"query": "black dress", "k": 4, "mode": "tfidf", "filters": {"colour_group_name": ["Black"]}},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "tfidf" and len(body["results"]) == 4 and body["personalised"] is False
    assert [f["value"] for f in body["facets"]["colour_group_name"]] == ["Black"]
    assert body["index_version"]


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),  # whitespace is stripped first
        ({"query": "x" * 257}, "query"),
        ({"query": "dress", "k": 0}, "k"),
        ({"query": "dress", "k": 101}, "k"),
        ({"query": "dress", "mode": "fuzzy"}, "mode"),
        ({"query": "dress", "customer_id": "not-a-customer"}, "customer_id"),
        ({"query": "dress", "filters": {"shoe_size": ["42"]}}, "shoe_size"),
        ({"query": "dress", "filters": {"price_min": -1}}, "price_min"),
    ],
)
def test_bad_text_requests_are_422_naming_the_field(client, payload, where) -> None:
    r = client.post("/search/text", json=payload)
    assert r.status_code == 422
    assert any(where in [str(x) for x in e["loc"]] for e in r.json()["detail"]), r.json()


def test_personalised_text_search(client) -> None:
    plain = client.post("/search/text", json={"query": "dress", "k": 10}).json()
    known = client.post("/search/text", json={"query": "dress", "k": 10, "customer_id": CUSTOMER_A}).json()
    unknown = client.post("/search/text", json={"query": "dress", "k": 10, "customer_id": UNKNOWN_CUSTOMER}).json()
    assert known["personalised"] is True and unknown["personalised"] is False
    assert unknown["results"] == plain["results"]  # no history: the plain ranking, not an error
    # Blended scores are in [0, 1]: (1 - w) * minmax(relevance) + w * minmax(affinity).
    assert all(0 <= r["score"] <= 1 for r in known["results"])


def test_image_search_over_http(client, sample_articles, hm_sample_dir: Path) -> None:
    article_id = sample_articles["article_id"].iloc[0]
    photo = (hm_sample_dir / "images" / article_id[:3] / f"{article_id}.jpg").read_bytes()
    r = client.post(
        "/search/image",
        files={"file": ("p.jpg", photo, "image/jpeg")},
        data={"k": "5", "filters": json.dumps({"index_group_name": ["Ladieswear"]})},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "image:default" and len(body["results"]) == 5
    assert article_id not in [x["article_id"] for x in body["results"]]  # its own photo is excluded
    assert [f["value"] for f in body["facets"]["index_group_name"]] == ["Ladieswear"]


def _post_image(client, data: bytes, **fields):
    return client.post("/search/image", files={"file": ("upload", data, "application/octet-stream")}, data=fields)


@pytest.mark.parametrize(
    ("data", "fields", "status", "message"),
    [
        (b"%PDF-1.4 not an image", {}, 415, "JPEG, PNG or WebP"),
        (_gif(), {}, 415, "JPEG, PNG or WebP"),
        (_png_claiming(100_000, 100_000), {}, 413, "pixels"),
        (_jpeg()[:300], {}, 400, "truncated"),
        (_jpeg(), {"k": "0"}, 422, "invalid image search options"),
        (_jpeg(), {"mode": "sketch"}, 422, "invalid image search options"),
        (_jpeg(), {"customer_id": "xyz"}, 422, "invalid image search options"),
        (_jpeg(), {"filters": "{not json"}, 422, "not valid JSON"),
        (_jpeg(), {"filters": json.dumps({"colour": ["Red"]})}, 422, "invalid image search options"),
    ],
)
def test_bad_image_requests(client, data, fields, status, message) -> None:
    r = _post_image(client, data, **fields)
    assert r.status_code == status, r.text
    assert message in json.dumps(r.json()["detail"])


def test_upload_over_the_limit_is_413_even_without_content_length(client) -> None:
    # The fixture's limit is 256 KiB. A multipart body streamed in chunks (no Content-Length):
    # the service must count the bytes itself.
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()

    def body():
        yield head
        for _ in range(40):
            yield b"\xff" * 16_384  # 640 KiB in all
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post(
        "/search/image", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_upload_over_the_limit_with_content_length_is_413(client) -> None:
    big = b"\xff" * (300 * 1024)
    r = client.post("/search/image", files={"file": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_image_route_needs_multipart_with_a_file(client) -> None:
    r = client.post("/search/image", json={"k": 3})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    r = client.post("/search/image", data={"k": "3"}, files={"other": ("x.txt", b"hi", "text/plain")})
    assert r.status_code == 422 and "'file'" in r.json()["detail"]


def test_service_without_an_index_is_alive_but_not_ready(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from services.search.app import create_app
    from services.search.settings import SearchSettings

    app = create_app(SearchSettings(index_dir=tmp_path / "nothing", log_level="WARNING"))
    with TestClient(app) as c:
        assert c.get("/livez").status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "hmrec index" in ready.json()["last_error"]
        r = c.post("/search/text", json={"query": "dress"})
        assert r.status_code == 503 and "no search index" in r.json()["detail"]
