"""Bounded request bodies and the photo-upload form, one implementation for every service.

The gateway and the search service both accept ``multipart/form-data`` with a photo in
``file`` and a few small fields beside it (``k``, ``filters`` as JSON, ...). Both must refuse
the same hostile inputs the same way, so the parsing lives here:

- not multipart: 415; a body over ``max_upload_bytes`` + ``FORM_FIELDS_ALLOWANCE``: 413 as
  soon as that many bytes have arrived (``Content-Length`` is checked first, for a cheap early
  answer, but never trusted when small);
- a body the multipart parser rejects (truncated, bad boundary, too many parts): 400;
- no ``file`` part, an empty file, ``filters`` that is not JSON: 422; a file over
  ``max_upload_bytes``: 413.

Each service then validates ``fields`` with its own pydantic model and decodes the image.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from starlette.datastructures import UploadFile

# Multipart headers and the small fields that come beside the photo.
FORM_FIELDS_ALLOWANCE = 64 * 1024
MAX_FORM_FIELDS = 10


@dataclass
class ImageForm:
    image: bytes
    filename: str
    content_type: str
    fields: dict[str, Any]  # the requested text fields that were sent; "filters" already parsed


async def read_bounded(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as more than ``limit`` bytes have arrived."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, detail=f"request body over the {limit:,}-byte limit (Content-Length {int(declared):,})")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, detail=f"request body over the {limit:,}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_image_form(request: Request, max_upload_bytes: int, field_names: tuple[str, ...]) -> ImageForm:
    """The photo in ``file`` and the text fields named in ``field_names`` (see the module doc)."""
    content_type = request.headers.get("content-type", "").lower()
    if not content_type.startswith("multipart/form-data"):
        raise HTTPException(415, detail="send the photo as multipart/form-data with the image in the 'file' field")
    body = await read_bounded(request, max_upload_bytes + FORM_FIELDS_ALLOWANCE)

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:  # the body is already bounded; parse it from memory
        form = await Request(request.scope, replay).form(max_files=1, max_fields=MAX_FORM_FIELDS)
    except Exception as exc:  # noqa: BLE001 - any multipart parse failure is the client's
        raise HTTPException(400, detail=f"malformed multipart body: {exc}") from exc
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise HTTPException(422, detail="multipart image search needs a photo in the 'file' field")
    image = await upload.read()
    if not image:
        raise HTTPException(422, detail="the uploaded file is empty")
    if len(image) > max_upload_bytes:
        raise HTTPException(413, detail=f"image is {len(image):,} bytes; the limit is {max_upload_bytes:,}")
    fields: dict[str, Any] = {}
    for name in field_names:
        value = form.get(name)
        if isinstance(value, str) and value.strip() != "":
            fields[name] = value
    if "filters" in fields:
        try:
            fields["filters"] = json.loads(fields["filters"])
        except json.JSONDecodeError as exc:
            raise HTTPException(422, detail=f"'filters' is not valid JSON: {exc.msg}") from exc
    return ImageForm(image, upload.filename or "upload", upload.content_type or "application/octet-stream", fields)
