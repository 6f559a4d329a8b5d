"""A hostile corpus for the upload and search routes: every class of attack issue 15 lists.

Each case is ``(name, layer, request kwargs for httpx/TestClient .post)``. ``layer`` says
where it must be refused:

- ``"form"``: by the shared multipart/JSON parsing (shared/serving/uploads.py), so both the gateway
  and the search service answer it with a 4xx without decoding anything;
- ``"image"``: a well-formed form whose photo is hostile; only the search service decodes, so
  at the gateway it is refused by the search service and passed on (still a 4xx).

Bodies are assembled by hand (``multipart``) so a case can hold bytes a polite client library
would refuse to send (control characters in part headers, broken boundaries, non-UTF-8).
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

BOUNDARY = "hostileXboundary"


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(
    width: int,
    height: int,
    extra_chunks: bytes = b"",
    bit_depth: int = 1,
    colour_type: int = 0,
    rows: bytes | None = None,
) -> bytes:
    """A real, valid greyscale PNG (1-bit by default: tiny on the wire whatever its size)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    if rows is None:
        row = b"\x00" + b"\xff" * ((width * bit_depth + 7) // 8)
        comp = zlib.compressobj(9)
        rows = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra_chunks + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def extreme_sides_png(width: int = 8, height: int = 60_000) -> bytes:
    """8 x 60,000: 480,000 pixels (far under any pixel limit), 3.7 KB, a 60,000² square if padded."""
    return png(width, height)


def text_chunk_bomb_png() -> bytes:
    """~2 KB PNG whose zTXt metadata inflates to 4 MB: past Pillow's text-chunk limit."""
    inflated = zlib.compress(b"A" * (4 * 1024 * 1024), 9)
    return png(16, 16, extra_chunks=chunk(b"zTXt", b"Comment\x00\x00" + inflated))


def claiming_png(width: int, height: int) -> bytes:
    """A header claiming width x height with no pixel data (a decompression-bomb header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def jpeg(size: tuple[int, int] = (64, 96)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (180, 40, 40)).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real JPEG whose SOF0 frame header is rewritten to claim other dimensions."""
    data = bytearray(jpeg((16, 16)))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def bad_crc_png() -> bytes:
    data = bytearray(png(32, 32))
    data[29] ^= 0xFF  # inside the IHDR CRC
    return bytes(data)


def bad_bit_depth_png() -> bytes:
    """IHDR says 7 bits per sample (no such PNG mode)."""
    return png(16, 16, bit_depth=7, rows=zlib.compress(b"\x00" * 16 * 16))


def idat_garbage_png() -> bytes:
    """Right header, pixel data that is not a zlib stream."""
    return png(32, 32, rows=b"\x13\x37" * 64)


def webp_garbage() -> bytes:
    return b"RIFF" + struct.pack("<I", 100) + b"WEBPVP8 " + struct.pack("<I", 90) + b"\x00" * 90


def multipart(parts: list[tuple[bytes, bytes]], boundary: str = BOUNDARY, close: bool = True) -> bytes:
    """``parts``: (raw part headers, raw body). No escaping at all: that is the point."""
    out = b""
    for headers, body in parts:
        out += b"--" + boundary.encode() + b"\r\n" + headers + b"\r\n\r\n" + body + b"\r\n"
    if close:
        out += b"--" + boundary.encode() + b"--\r\n"
    return out


def file_part(
    data: bytes, filename: bytes = b"photo.jpg", content_type: bytes = b"image/jpeg", name: bytes = b"file"
) -> tuple[bytes, bytes]:
    return (
        b'Content-Disposition: form-data; name="' + name + b'"; filename="' + filename + b'"\r\n'
        b"Content-Type: " + content_type,
        data,
    )


def field_part(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    return (b'Content-Disposition: form-data; name="' + name + b'"', value)


def form(
    parts: list[tuple[bytes, bytes]], boundary: str = BOUNDARY, close: bool = True, content_type: str | None = None
) -> dict:
    return {
        "content": multipart(parts, boundary, close),
        "headers": {"content-type": content_type or f"multipart/form-data; boundary={boundary}"},
    }


def with_photo(*fields: tuple[bytes, bytes], photo: bytes | None = None) -> dict:
    return form([file_part(photo or jpeg()), *fields])


def hostile_cases() -> list[tuple[str, str, dict]]:
    photo = jpeg()
    deep = b"[" * 5000 + b"]" * 5000
    deep_dict = b'{"a":' * 3000 + b"1" + b"}" * 3000
    cases: list[tuple[str, str, dict]] = [
        # --- the photo itself ---------------------------------------------------------------
        ("png text-chunk bomb", "image", with_photo(photo=text_chunk_bomb_png())),
        ("png 8 x 60,000 sides", "image", with_photo(photo=extreme_sides_png())),
        ("png 60,000 x 8 sides", "image", with_photo(photo=extreme_sides_png(60_000, 8))),
        ("png claims 100k x 100k", "image", with_photo(photo=claiming_png(100_000, 100_000))),
        ("jpeg claims 65,000 x 60,000", "image", with_photo(photo=jpeg_claiming(65_000, 60_000))),
        ("jpeg claims 60,000 x 16", "image", with_photo(photo=jpeg_claiming(60_000, 16))),
        ("png bad crc", "image", with_photo(photo=bad_crc_png())),
        ("png bit depth 7", "image", with_photo(photo=bad_bit_depth_png())),
        ("png pixel data not zlib", "image", with_photo(photo=idat_garbage_png())),
        ("png 0 x 0", "image", with_photo(photo=claiming_png(0, 0))),
        ("png 4 x 4", "image", with_photo(photo=png(4, 4))),
        ("webp garbage", "image", with_photo(photo=webp_garbage())),
        ("truncated jpeg", "image", with_photo(photo=photo[: len(photo) // 2])),
        ("png signature only", "image", with_photo(photo=b"\x89PNG\r\n\x1a\n")),
        ("gif", "image", with_photo(photo=b"GIF89a" + b"\x00" * 40)),
        ("svg", "image", with_photo(photo=b"<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>")),
        # --- part names, filenames, part headers ---------------------------------------------
        ("filename with \\x01", "form", form([file_part(photo, filename=b"ph\x01oto.jpg")])),
        ("filename with \\x00", "form", form([file_part(photo, filename=b"photo\x00.jpg")])),
        ("filename with escape sequence", "form", form([file_part(photo, filename=b"\x1b[31mred.jpg")])),
        ("filename of 10,000 chars", "form", form([file_part(photo, filename=b"a" * 10_000 + b".jpg")])),
        ("part content type with \\x7f", "form", form([file_part(photo, content_type=b"image/jpeg\x7f")])),
        ("part content type of 5,000 chars", "form", form([file_part(photo, content_type=b"image/" + b"j" * 5000)])),
        (
            "field name with control chars",
            "form",
            with_photo(field_part(b"k\x01\x02", b"12"), field_part(b"\x00", b"x")),
        ),
        ("no content-disposition", "form", form([(b"Content-Type: image/jpeg", photo)])),
        ("content-disposition without name", "form", form([(b"Content-Disposition: form-data", photo)])),
        ("part header without colon", "form", form([(b"Content-Disposition form-data name=file", photo)])),
        (
            "part header of 100 KB",
            "form",
            form([(b"X-Junk: " + b"a" * 100_000 + b"\r\n" + file_part(photo)[0], photo)]),
        ),
        ("two file parts", "form", form([file_part(photo), file_part(photo)])),
        ("k sent as a file", "form", form([file_part(photo), file_part(b"12", name=b"k", filename=b"k.txt")])),
        ("no file part", "form", form([field_part(b"k", b"12")])),
        ("empty file", "form", form([file_part(b"")])),
        ("boundary never closed", "form", form([file_part(photo)], close=False)),
        ("wrong boundary", "form", form([file_part(photo)], content_type="multipart/form-data; boundary=other")),
        ("no boundary parameter", "form", form([file_part(photo)], content_type="multipart/form-data")),
        ("non-utf8 field value", "form", with_photo(field_part(b"customer_id", b"\xff\xfe\xfa" * 10))),
        ("30 fields", "form", with_photo(*[field_part(f"f{i}".encode(), b"x") for i in range(30)])),
        # --- JSON filters and numbers -----------------------------------------------------
        ("filters 5,000 deep list", "form", with_photo(field_part(b"filters", deep))),
        (
            "filters 2,000 deep list (under the size limit)",
            "form",
            with_photo(field_part(b"filters", b"[" * 2000 + b"]" * 2000)),
        ),
        ("filters 3,000 deep dict", "form", with_photo(field_part(b"filters", deep_dict))),
        ("filters 6 deep", "form", with_photo(field_part(b"filters", b'{"colour_group_name":[[[[["Red"]]]]]}'))),
        (
            "filters int of 5,000 digits",
            "form",
            with_photo(field_part(b"filters", b'{"price_min":' + b"9" * 5000 + b"}")),
        ),
        (
            "filters int of 4,000 digits",
            "form",
            with_photo(field_part(b"filters", b'{"price_min":' + b"9" * 4000 + b"}")),
        ),
        ("filters float 1e999", "form", with_photo(field_part(b"filters", b'{"price_max":1e999}'))),
        ("filters NaN", "form", with_photo(field_part(b"filters", b'{"price_max":NaN}'))),
        ("filters -Infinity", "form", with_photo(field_part(b"filters", b'{"price_min":-Infinity}'))),
        (
            "filters of 200 KB",
            "form",
            with_photo(field_part(b"filters", b'{"colour_group_name":["' + b"x" * 200_000 + b'"]}')),
        ),
        ("filters not an object", "form", with_photo(field_part(b"filters", b'"Red"'))),
        ("filters not json", "form", with_photo(field_part(b"filters", b"{nope"))),
        ("filters unknown key", "form", with_photo(field_part(b"filters", b'{"$where":"1"}'))),
        ("k of 5,000 digits", "form", with_photo(field_part(b"k", b"9" * 5000))),
        ("k as float", "form", with_photo(field_part(b"k", b"1e3"))),
        ("k sent twice", "form", with_photo(field_part(b"k", b"5"), field_part(b"k", b"6"))),
        ("k negative", "form", with_photo(field_part(b"k", b"-1"))),
        # --- whole-body --------------------------------------------------------------------
        (
            "multipart garbage",
            "form",
            {"content": b"\x00\xff" * 500, "headers": {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}},
        ),
        (
            "content-length of 5,000 digits",
            "form",
            {
                "content": b"",
                "headers": {"content-type": f"multipart/form-data; boundary={BOUNDARY}", "content-length": "9" * 5000},
            },
        ),
    ]
    return cases


def hostile_json_bodies() -> list[tuple[str, dict]]:
    """Text-search bodies (application/json) of the same classes."""
    return [
        ("json 5,000 deep", {"content": b'{"query":"dress","filters":' + b"[" * 5000 + b"]" * 5000 + b"}"}),
        ("json int of 5,000 digits", {"content": b'{"query":"dress","k":' + b"9" * 5000 + b"}"}),
        ("json price of 5,000 digits", {"content": b'{"query":"dress","filters":{"price_min":' + b"9" * 5000 + b"}}"}),
        ("json non-utf8", {"content": b'{"query":"\xff\xfe dress"}'}),
        ("json query of 10,000 chars", {"content": b'{"query":"' + b"a" * 10_000 + b'"}'}),
        ("json k as string of digits", {"content": b'{"query":"dress","k":"' + b"9" * 5000 + b'"}'}),
    ]


def bad_image_cases() -> list[tuple[str, dict]]:
    """The photo-decoding cases alone (a storm of them must not take text search down)."""
    return [(name, kwargs) for name, layer, kwargs in hostile_cases() if layer == "image"]
