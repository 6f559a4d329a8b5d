"""The hostile corpus (tests/hostile_corpus.py) against the search service in process: every
case a 4xx with a message, the decoder's limits and reduced-size decoding, and the bound on
concurrent decodes. The same corpus runs against real processes in tests/e2e/test_hostile_stack.py."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from services.search.upload import MAX_DECODED_SIDE, UploadError, decode_upload
from tests.hostile_corpus import (
    extreme_sides_png,
    hostile_cases,
    hostile_json_bodies,
    jpeg,
    png,
    text_chunk_bomb_png,
)

CASES = hostile_cases()


@pytest.mark.parametrize(("name", "layer", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_every_hostile_upload_is_a_4xx_with_a_message(client, name, layer, kwargs) -> None:
    r = client.post("/search/image", **kwargs)
    assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:300])
    detail = r.json()["detail"]
    assert detail and str(detail).strip(), name


JSON_CASES = hostile_json_bodies()


@pytest.mark.parametrize(("name", "kwargs"), JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_every_hostile_text_body_is_a_4xx_with_a_message(client, name, kwargs) -> None:
    r = client.post("/search/text", headers={"content-type": "application/json"}, **kwargs)
    assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:300])
    assert r.json()["detail"], name


def test_the_service_still_answers_after_the_corpus(client) -> None:
    for _name, _layer, kwargs in CASES:
        client.post("/search/image", **kwargs)
    assert client.post("/search/text", json={"query": "dress"}).status_code == 200
    assert client.post("/search/image", files={"file": ("p.jpg", jpeg(), "image/jpeg")}).status_code == 200


def test_text_chunk_bomb_is_400_naming_the_decoder_limit() -> None:
    data = text_chunk_bomb_png()
    assert len(data) < 5000
    with pytest.raises(UploadError) as info:
        decode_upload(data, 40_000_000)
    assert info.value.status == 400 and "too large" in info.value.message


@pytest.mark.parametrize("size", [(8, 60_000), (60_000, 8), (9000, 9)])
def test_a_side_over_the_limit_is_413_before_decoding(size) -> None:
    with pytest.raises(UploadError) as info:
        decode_upload(extreme_sides_png(*size), 40_000_000, max_image_side=8192)
    assert info.value.status == 413 and "per side" in info.value.message


def test_a_long_strip_under_the_side_limit_is_decoded_small() -> None:
    image = decode_upload(png(8, 8000), 40_000_000, max_image_side=8192)
    assert max(image.size) <= MAX_DECODED_SIDE and min(image.size) >= 1


def test_large_jpeg_is_decoded_at_reduced_size_and_bounded() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (4000, 3000), (20, 120, 200)).save(buf, format="JPEG", quality=80)
    image = decode_upload(buf.getvalue(), 40_000_000)
    assert image.mode == "RGB" and max(image.size) == MAX_DECODED_SIDE
    assert abs(image.size[0] / image.size[1] - 4 / 3) < 0.01
    assert image.getpixel((10, 10)) == pytest.approx((20, 120, 200), abs=3)


def test_small_photos_are_not_resized() -> None:
    assert decode_upload(jpeg((300, 500)), 40_000_000).size == (300, 500)


def test_decodes_wait_for_a_turn_then_shed_with_retry_after(search_settings, search_index) -> None:
    """With every decode slot held, an image request is shed (503 + Retry-After) after
    decode_wait_s, while text search is unaffected."""
    import threading

    from fastapi.testclient import TestClient

    import services.search.app as search_app

    settings = search_settings.model_copy(update={"max_concurrent_decodes": 1, "decode_wait_s": 0.2})
    release = threading.Event()
    real = search_app.decode_upload

    def slow_decode(*args, **kwargs):
        release.wait(10)
        return real(*args, **kwargs)

    search_app.decode_upload = slow_decode
    try:
        with TestClient(search_app.create_app(settings)) as c:
            c.app.state.slot.current, c.app.state.slot.version = search_index, search_index.version
            results: list[int] = []
            first = threading.Thread(
                target=lambda: results.append(
                    c.post("/search/image", files={"file": ("p.jpg", jpeg(), "image/jpeg")}).status_code
                )
            )
            first.start()
            import time

            time.sleep(0.3)
            shed = c.post("/search/image", files={"file": ("p.jpg", jpeg(), "image/jpeg")})
            assert shed.status_code == 503 and shed.headers["retry-after"] == "1", shed.text
            assert "decoded" in shed.json()["detail"]
            assert c.post("/search/text", json={"query": "dress"}).status_code == 200
            release.set()
            first.join(10)
            assert results == [200]
    finally:
        search_app.decode_upload = real
        release.set()


def test_padding_to_a_square_is_bounded_whatever_the_sides() -> None:
    """The CNN's square canvas never exceeds MAX_SQUARE_SIDE, even for an image that did not
    come through decode_upload; photos within the bound are padded exactly as before."""
    import numpy as np

    from services.search.image import MAX_SQUARE_SIDE, to_square_pixels

    strip = Image.new("RGB", (8, 60_000), (200, 0, 0))
    pixels = to_square_pixels(strip)
    assert pixels.shape == (224, 224, 3) and strip.size == (8, 60_000)  # the caller's image is untouched
    assert MAX_SQUARE_SIDE < 60_000
    normal = Image.new("RGB", (120, 180), (0, 0, 200))
    canvas = Image.new("RGB", (180, 180), (255, 255, 255))
    canvas.paste(normal, (30, 0))
    expected = np.asarray(canvas.resize((224, 224), Image.BILINEAR), dtype=np.uint8)
    assert np.array_equal(to_square_pixels(normal), expected)
