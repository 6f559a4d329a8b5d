"""Decoding an uploaded photo safely.

- Only the JPEG, PNG and WebP decoders are ever tried (``Image.open(formats=...)``): a TIFF,
  PSD or SVG never reaches a decoder with a history of CVEs. Anything else is 415.
- Decompression bombs: ``Image.MAX_IMAGE_PIXELS`` is lowered to what a product photo can
  need, Pillow's ``DecompressionBombWarning`` is escalated to an error, and the pixel count
  *and each side* from the header are checked before any pixel is decoded. Over either limit
  is 413: a 3.7 KB PNG of 8 x 60,000 has few pixels, but padded to a square for the CNN it
  would be a 60,000² canvas (10.8 GB of RGB).
- Reduced-size decoding: JPEG is decoded at 1/2, 1/4 or 1/8 scale (``Image.draft``) when that
  still leaves ``MAX_DECODED_SIDE`` pixels on the shorter of the two target sides, and every
  decoded photo is shrunk to at most ``MAX_DECODED_SIDE`` on its longer side. The search only
  ever looks at 224 x 224, so the bound costs nothing, and every later step (padding to a
  square, colour histograms) works on at most ~1 megapixel whatever was uploaded.
- Truncated files are refused (``LOAD_TRUNCATED_IMAGES`` stays False and the image is fully
  decoded here, not lazily later): 400.
- Every other decoder error (Pillow's text-chunk limit, a broken palette, a ``struct.error``
  from a lying chunk length...) is the upload's fault too: 400 with the decoder's words, or 413
  when decoding ran out of memory. Nothing a client uploads is a 500.
The byte-size limit is enforced by the caller while the body streams in (see app.py).
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageFile, PngImagePlugin, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
# The longest side a decoded upload keeps (the CNN sees 224 x 224).
MAX_DECODED_SIDE = 1024
DEFAULT_MAX_IMAGE_SIDE = 8192

ImageFile.LOAD_TRUNCATED_IMAGES = False
# Process-wide, set once at import (warnings.catch_warnings per request is not thread-safe).
warnings.simplefilter("error", Image.DecompressionBombWarning)
# PNG text chunks (tEXt/zTXt/iTXt) are metadata we never read: keep what one may inflate to small.
PngImagePlugin.MAX_TEXT_CHUNK = 256 * 1024
PngImagePlugin.MAX_TEXT_MEMORY = 1024 * 1024


class UploadError(ValueError):
    """Bad upload, with the HTTP status it deserves."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def configure_pillow(max_image_pixels: int) -> None:
    """Lower Pillow's own bomb limit (default ~89 MP) to the product-photo limit."""
    Image.MAX_IMAGE_PIXELS = max_image_pixels


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text[:300]


def decode_upload(data: bytes, max_image_pixels: int, max_image_side: int = DEFAULT_MAX_IMAGE_SIDE) -> Image.Image:
    """A fully decoded RGB image of at most ``MAX_DECODED_SIDE`` per side, or
    :class:`UploadError` (415 / 413 / 400)."""
    if not data:
        raise UploadError(400, "the uploaded file is empty")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as exc:
        raise UploadError(415, "not a supported image: send a JPEG, PNG or WebP photo") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadError(413, f"image has too many pixels (limit {max_image_pixels:,}): {exc}") from exc
    except MemoryError as exc:
        raise UploadError(413, "the image's header asks for more memory than a photo may use") from exc
    except OSError as exc:
        raise UploadError(
            400, f"the image is truncated or corrupt (its header does not read: {_describe(exc)})"
        ) from exc
    except Exception as exc:  # e.g. ValueError past PngImagePlugin.MAX_TEXT_CHUNK, struct.error
        raise UploadError(400, f"the image is corrupt or hostile (its header does not read: {_describe(exc)})") from exc
    try:
        return _decode_opened(image, max_image_pixels, max_image_side)
    finally:
        image.close()


def _decode_opened(image: Image.Image, max_image_pixels: int, max_image_side: int) -> Image.Image:
    width, height = image.size
    if width * height > max_image_pixels:
        raise UploadError(
            413,
            f"image is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {max_image_pixels:,} (decompression bomb?)",
        )
    if max(width, height) > max_image_side:
        raise UploadError(
            413,
            f"image is {width}x{height}: its longest side is {max(width, height):,} pixels; "
            f"the limit is {max_image_side:,} per side",
        )
    if width < 8 or height < 8:
        raise UploadError(400, f"image is {width}x{height}; at least 8x8 pixels are needed")
    fmt = image.format
    try:
        if fmt == "JPEG":
            # Decode at the smallest DCT scale that keeps the target box covered.
            image.draft("RGB", _draft_box(width, height))
        image.load()
        rgb = image.convert("RGB")
        if max(rgb.size) > MAX_DECODED_SIDE:
            rgb.thumbnail((MAX_DECODED_SIDE, MAX_DECODED_SIDE), Image.Resampling.BILINEAR)
        return rgb
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadError(413, f"image has too many pixels (limit {max_image_pixels:,}): {exc}") from exc
    except MemoryError as exc:
        raise UploadError(413, f"decoding the {width}x{height} {fmt} ran out of memory") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        # "image file is truncated", broken Huffman tables, bad PNG chunks...
        raise UploadError(400, f"the image is truncated or corrupt ({fmt}): {_describe(exc)}") from exc
    except Exception as exc:  # whatever else a decoder raises on hostile bytes
        raise UploadError(
            400, f"the image is corrupt or hostile ({fmt}): {exc.__class__.__name__}: {_describe(exc)}"
        ) from exc


def _draft_box(width: int, height: int) -> tuple[int, int]:
    """The size ``draft`` must not go below: the photo scaled so its longer side is MAX_DECODED_SIDE."""
    scale = min(1.0, MAX_DECODED_SIDE / max(width, height))
    return max(1, int(width * scale)), max(1, int(height * scale))
