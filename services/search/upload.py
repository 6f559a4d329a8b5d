"""Decoding an uploaded photo safely.

- Only the JPEG, PNG and WebP decoders are ever tried (``Image.open(formats=...)``): a TIFF,
  PSD or SVG never reaches a decoder with a history of CVEs. Anything else is 415.
- Decompression bombs: ``Image.MAX_IMAGE_PIXELS`` is lowered to what a product photo can
  need, Pillow's ``DecompressionBombWarning`` is escalated to an error, and the pixel count
  from the header is checked before any pixel is decoded. Over the limit is 413.
- Truncated files are refused (``LOAD_TRUNCATED_IMAGES`` stays False and the image is fully
  decoded here, not lazily later): 400.
The byte-size limit is enforced by the caller while the body streams in (see app.py).
"""
from __future__ import annotations

import io
import warnings

from PIL import Image, ImageFile, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")

ImageFile.LOAD_TRUNCATED_IMAGES = False
# Process-wide, set once at import (warnings.catch_warnings per request is not thread-safe).
warnings.simplefilter("error", Image.DecompressionBombWarning)


class UploadError(ValueError):
    """Bad upload, with the HTTP status it deserves."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def configure_pillow(max_image_pixels: int) -> None:
    """Lower Pillow's own bomb limit (default ~89 MP) to the product-photo limit."""
    Image.MAX_IMAGE_PIXELS = max_image_pixels


def decode_upload(data: bytes, max_image_pixels: int) -> Image.Image:
    """A fully decoded RGB image, or :class:`UploadError` (415 / 413 / 400)."""
    if not data:
        raise UploadError(400, "the uploaded file is empty")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as exc:
        raise UploadError(415, "not a supported image: send a JPEG, PNG or WebP photo") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadError(413, f"image has too many pixels (limit {max_image_pixels:,}): {exc}") from exc
    except OSError as exc:
        raise UploadError(400, f"the image is truncated or corrupt (its header does not read: {exc})") from exc
    width, height = image.size
    if width * height > max_image_pixels:
        raise UploadError(413, f"image is {width}x{height} = {width * height:,} pixels; "
                               f"the limit is {max_image_pixels:,} (decompression bomb?)")
    if width < 8 or height < 8:
        raise UploadError(400, f"image is {width}x{height}; at least 8x8 pixels are needed")
    try:
        image.load()
        return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadError(413, f"image has too many pixels (limit {max_image_pixels:,}): {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        # "image file is truncated", broken Huffman tables, bad PNG chunks...
        raise UploadError(400, f"the image is truncated or corrupt ({image.format}): {exc}") from exc
