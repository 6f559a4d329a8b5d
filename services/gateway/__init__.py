"""The public gateway: orchestrates candidate, ranker and search over HTTP, caches in Redis, degrades
gracefully, and keeps the browsing events.

This is the service's front door for the offline pipeline (draining and replaying events); the
shop calls the gateway over HTTP. Names load on first use.

- ``decode_entry``: one event as the drain writes it to parquet.
- ``SessionEvent``, ``anonymous_customer_id``, ``weighted_articles``: a session's recent events
  as ``/recommend`` turns them into stage one's ``recent_article_ids``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.front_door import lazy_exports

if TYPE_CHECKING:
    from services.gateway.event_store import SessionEvent, anonymous_customer_id, decode_entry, weighted_articles

# name -> the module that defines it, imported on first use.
_EXPORTS = {
    "SessionEvent": "services.gateway.event_store",
    "anonymous_customer_id": "services.gateway.event_store",
    "decode_entry": "services.gateway.event_store",
    "weighted_articles": "services.gateway.event_store",
}

__all__ = [
    "SessionEvent",
    "anonymous_customer_id",
    "decode_entry",
    "weighted_articles",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)
