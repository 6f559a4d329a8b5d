"""Bounded request bodies and the photo-upload form, one implementation for every service.

The gateway and the search service both accept ``multipart/form-data`` with a photo in
``file`` and a few small fields beside it (``k``, ``filters`` as JSON, ...). Both must refuse
the same hostile inputs the same way, so the parsing lives here. Every refusal is a 4xx with a
message; nothing a client sends can reach a 500:

- not multipart: 415; a body over ``max_upload_bytes`` + ``FORM_FIELDS_ALLOWANCE``: 413 as
  soon as that many bytes have arrived (``Content-Length`` is checked first, for a cheap early
  answer, but never trusted when small);
- a body the multipart parser rejects (truncated, bad boundary, bad part headers, bad
  charset, too many parts): 400;
- a ``file`` part whose filename or content type holds control characters or is absurdly
  long: 400 (those strings are forwarded upstream as part headers, where they would be a
  header injection);
- a field name with control characters: 400; a field the route does not take: 422;
- no ``file`` part, an empty file, a text field sent as a file, a field over its size limit,
  ``filters`` that is not JSON, nested deeper than ``MAX_JSON_DEPTH``, or holding a number
  that is too long or not finite: 422; a file over ``max_upload_bytes``: 413;
- the client hanging up mid-upload: :class:`ClientGone` (status 499, nginx's "client closed
  request"), logged as one line, never a traceback.

Each service then validates ``fields`` with its own pydantic model and decodes the image.
"""

from __future__ import annotations

import json
import logging
import math
import unicodedata
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

log = logging.getLogger("shared.serving.uploads")

# Multipart headers and the small fields that come beside the photo.
FORM_FIELDS_ALLOWANCE = 64 * 1024
MAX_FORM_FIELDS = 10
MAX_FILENAME_CHARS = 255
MAX_FIELD_NAME_CHARS = 64
MAX_PART_CONTENT_TYPE_CHARS = 100
# Per text field; ``filters`` (JSON) may be longer than the scalar fields.
MAX_FIELD_CHARS = 256
MAX_JSON_FIELD_CHARS = 8 * 1024
MAX_JSON_DEPTH = 4
MAX_NUMBER_CHARS = 32
CLIENT_CLOSED_REQUEST = 499


class ClientGone(HTTPException):
    """The client disconnected before its request body arrived (no one reads the answer)."""

    def __init__(self, received: int) -> None:
        super().__init__(CLIENT_CLOSED_REQUEST, detail=f"client closed the request after {received:,} bytes")
        self.received = received


@dataclass
class ImageForm:
    image: bytes
    filename: str
    content_type: str
    fields: dict[str, Any]  # the requested text fields that were sent; "filters" already parsed


def _declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        return None
    if len(declared) > 18:  # int() of thousands of digits is itself a cost (and a ValueError past 4300)
        return 10**18
    return int(declared)


async def read_bounded(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as more than ``limit`` bytes have arrived.

    A client that hangs up half-way raises :class:`ClientGone` after one log line."""
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise HTTPException(413, detail=f"request body over the {limit:,}-byte limit (Content-Length {declared:,})")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, detail=f"request body over the {limit:,}-byte limit")
            chunks.append(chunk)
    except ClientDisconnect:
        log.warning(
            "%s %r %d client closed the request after %d bytes of the body",
            request.method,
            request.url.path,
            CLIENT_CLOSED_REQUEST,
            size,
        )
        raise ClientGone(size) from None
    return b"".join(chunks)


def has_control_characters(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text)


def _check_header_text(what: str, value: str, max_chars: int) -> None:
    if len(value) > max_chars:
        raise HTTPException(
            400, detail=f"the 'file' part's {what} is {len(value):,} characters; the limit is {max_chars}"
        )
    if has_control_characters(value):
        raise HTTPException(400, detail=f"the 'file' part's {what} contains control characters")


def _number(text: str, kind: type) -> Any:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number of {len(text):,} characters (the limit is {MAX_NUMBER_CHARS})")
    value = kind(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{text[:20]} is not a finite number")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: a deep value cannot blow the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json_field(name: str, text: str) -> Any:
    """A small JSON form field, or 422 for anything hostile (see the module doc)."""
    if len(text) > MAX_JSON_FIELD_CHARS:
        raise HTTPException(422, detail=f"'{name}' is {len(text):,} characters; the limit is {MAX_JSON_FIELD_CHARS:,}")
    try:
        value = json.loads(
            text,
            parse_int=lambda s: _number(s, int),
            parse_float=lambda s: _number(s, float),
            parse_constant=_refuse_constant,
        )
    except json.JSONDecodeError as exc:
        raise HTTPException(422, detail=f"'{name}' is not valid JSON: {exc.msg} (char {exc.pos})") from exc
    except RecursionError as exc:
        raise HTTPException(
            422, detail=f"'{name}' is nested too deeply (the limit is {MAX_JSON_DEPTH} levels)"
        ) from exc
    except (ValueError, OverflowError) as exc:
        raise HTTPException(422, detail=f"'{name}' is not acceptable JSON: {exc}") from exc
    if _depth(value) > MAX_JSON_DEPTH:
        raise HTTPException(422, detail=f"'{name}' is nested too deeply (the limit is {MAX_JSON_DEPTH} levels)")
    return value


async def read_image_form(
    request: Request, max_upload_bytes: int, field_names: tuple[str, ...], json_fields: tuple[str, ...] = ("filters",)
) -> ImageForm:
    """The photo in ``file`` and the text fields named in ``field_names`` (see the module doc)."""
    content_type = request.headers.get("content-type", "").lower()
    if not content_type.startswith("multipart/form-data"):
        raise HTTPException(415, detail="send the photo as multipart/form-data with the image in the 'file' field")
    body = await read_bounded(request, max_upload_bytes + FORM_FIELDS_ALLOWANCE)

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:  # the body is already bounded; parse it from memory
        form = await Request(request.scope, replay).form(max_files=1, max_fields=MAX_FORM_FIELDS)
    except Exception as exc:  # any multipart parse failure is the client's
        message = exc.detail if isinstance(exc, StarletteHTTPException) else f"{exc.__class__.__name__}: {exc}"
        raise HTTPException(400, detail=f"malformed multipart body: {message}"[:500]) from exc
    try:
        for name in form.keys():
            if has_control_characters(name) or len(name) > MAX_FIELD_NAME_CHARS:
                raise HTTPException(
                    400,
                    detail=f"a form field name holds control characters or is over "
                    f"{MAX_FIELD_NAME_CHARS} characters: {name[:40]!r}",
                )
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, detail="multipart image search needs a photo in the 'file' field")
        for name in form.keys():
            if name != "file" and name not in field_names:
                raise HTTPException(
                    422,
                    detail=f"unknown form field {name[:40]!r}; this route takes {', '.join(('file', *field_names))}",
                )
        filename = upload.filename or "upload"
        part_type = upload.content_type or "application/octet-stream"
        _check_header_text("filename", filename, MAX_FILENAME_CHARS)
        _check_header_text("content type", part_type, MAX_PART_CONTENT_TYPE_CHARS)
        image = await upload.read()
        if not image:
            raise HTTPException(422, detail="the uploaded file is empty")
        if len(image) > max_upload_bytes:
            raise HTTPException(413, detail=f"image is {len(image):,} bytes; the limit is {max_upload_bytes:,}")
        fields: dict[str, Any] = {}
        for name in field_names:
            values = form.getlist(name)
            if len(values) > 1:
                raise HTTPException(422, detail=f"'{name}' was sent {len(values)} times; send it once")
            value = values[0] if values else None
            if value is None:
                continue
            if not isinstance(value, str):
                raise HTTPException(422, detail=f"'{name}' must be a text field, not a file")
            limit = MAX_JSON_FIELD_CHARS if name in json_fields else MAX_FIELD_CHARS
            if len(value) > limit:
                raise HTTPException(422, detail=f"'{name}' is {len(value):,} characters; the limit is {limit:,}")
            if value.strip() != "":
                fields[name] = parse_json_field(name, value) if name in json_fields else value
        return ImageForm(image, filename, part_type, fields)
    finally:
        await form.close()  # spooled temporary files of the parts
