"""Text and image search over the catalogue, with filters, facets and personalisation.

This is the service's front door: what the CLI and the evaluation may call. Nothing outside the
service imports its other modules; other services talk to ``app`` over HTTP only. Names load on
first use.

- ``build_text_index`` / ``build_image_index`` (resumable), ``image_index_pending``,
  ``image_status`` with ``ABSENT`` / ``COMPLETE`` / ``IMAGE_STATUS_KEY``, ``read_manifest`` /
  ``write_manifest``: the index folder ``output/search/``.
- ``SearchIndex``: a loaded index; the CLI queries through it, so it answers what the API does.
- ``SearchSettings``; ``decode_upload`` / ``configure_pillow`` / ``UploadError`` for photo queries.
- ``evaluate_search_quality`` / ``format_report``: the search quality report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.front_door import lazy_exports

if TYPE_CHECKING:
    from services.search.engine import SearchIndex
    from services.search.evaluate import evaluate_search_quality, format_report
    from services.search.index import (
        ABSENT,
        COMPLETE,
        IMAGE_STATUS_KEY,
        build_image_index,
        build_text_index,
        image_index_pending,
        image_status,
        read_manifest,
        write_manifest,
    )
    from services.search.settings import SearchSettings
    from services.search.upload import UploadError, configure_pillow, decode_upload

# name -> the module that defines it, imported on first use.
_EXPORTS = {
    "SearchIndex": "services.search.engine",
    "evaluate_search_quality": "services.search.evaluate",
    "format_report": "services.search.evaluate",
    "ABSENT": "services.search.index",
    "COMPLETE": "services.search.index",
    "IMAGE_STATUS_KEY": "services.search.index",
    "build_image_index": "services.search.index",
    "build_text_index": "services.search.index",
    "image_index_pending": "services.search.index",
    "image_status": "services.search.index",
    "read_manifest": "services.search.index",
    "write_manifest": "services.search.index",
    "SearchSettings": "services.search.settings",
    "UploadError": "services.search.upload",
    "configure_pillow": "services.search.upload",
    "decode_upload": "services.search.upload",
}

__all__ = [
    "SearchIndex",
    "evaluate_search_quality",
    "format_report",
    "ABSENT",
    "COMPLETE",
    "IMAGE_STATUS_KEY",
    "build_image_index",
    "build_text_index",
    "image_index_pending",
    "image_status",
    "read_manifest",
    "write_manifest",
    "SearchSettings",
    "UploadError",
    "configure_pillow",
    "decode_upload",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)
