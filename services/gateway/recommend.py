"""/recommend: candidates -> ranker -> filters -> article cards, with cache and fallbacks.

Paths (the response's ``source``):

- ``ranker``: the candidate service's stage one (two-tower, repurchase, co-purchase, other
  colours, trending, best sellers), re-ordered by the ranker service; ``ordering`` says whether
  that is the MMoE (``mmoe``) or the baseline order the publish gate chose (``baseline:<name>``);
- ``candidates``: the ranker failed (down, slow, breaker open): stage-one order as is;
- ``popular``: the candidate service failed: best sellers of the customer's age band.

Degraded answers are not cached, so the first request after a dependency recovers gets the
full pipeline again. Cache keys carry the versions the services report (polled from
/readyz, refreshed by every answer), so a newly swapped model misses the old entries.
"""

from __future__ import annotations

from typing import Any

from services.gateway.cache import cache_key, dumps, mark_cached
from services.gateway.clients import DependencyRejected, DependencyUnavailable
from services.gateway.events import SessionView
from services.gateway.state import GatewayState
from shared.schemas import MAX_RANK_INPUT, SearchFilters


def recommend_key(
    state: GatewayState,
    versions: dict[str, str | None],
    customer_id: str,
    k: int,
    offset: int,
    filters: SearchFilters,
    session: SessionView | None = None,
) -> str:
    params = {
        "session": session.digest if session is not None else "",  # a click changes the next feed
        "customer_id": customer_id,
        "k": k,
        "offset": offset,
        "filters": filters.model_dump(exclude_none=True),
        "num_candidates": state.settings.num_candidates,
    }
    return cache_key(state.settings.cache_prefix, "rec", versions, params)


async def recommend(
    state: GatewayState,
    customer_id: str,
    k: int,
    offset: int,
    filters: SearchFilters,
    session: SessionView | None = None,
) -> bytes:
    """The response body as JSON bytes (cached bytes are served as they are)."""
    catalogue = state.catalogue
    known = {
        "candidate": state.versions.get("candidate"),
        "ranker": state.versions.get("ranker"),
        "catalogue": catalogue.version,
    }
    key = recommend_key(state, known, customer_id, k, offset, filters, session)
    hit = await state.cache.get_raw(key)
    if hit is not None:
        return mark_cached(hit)

    degraded: list[str] = []
    used = {"candidate": None, "ranker": None, "catalogue": catalogue.version}
    cold_start: bool | None = None
    band: str | None = None
    ordered: list[tuple[str, float | None]] = []
    candidates: list[dict[str, Any]] = []
    source = "ranker"
    ordering: str | None = None
    try:
        answer = await state.clients["candidate"].post_json(
            "/candidates",
            {
                "customer_id": customer_id,
                "k": state.settings.num_candidates,
                **(session.candidate_fields() if session is not None else {}),
            },
        )
        candidates = answer["candidates"]
        used["candidate"] = state.note_version("candidate", answer.get("model_version"))
        cold_start = bool(answer.get("cold_start", False))
    except (DependencyUnavailable, DependencyRejected, KeyError, TypeError) as exc:
        degraded.append("candidate")
        state.metrics.fallbacks.labels("/recommend", "candidate", "popular").inc()
        state.log_fallback("candidate", exc)
        band, items = catalogue.popular_for(customer_id)
        source, ordered = "popular", [(a, None) for a in items]
    else:
        if not candidates:
            # Nothing to rank (a service that never returns empty lists should not get here):
            # the age band's best sellers beat an empty page. Not a failure, so not degraded.
            band, items = catalogue.popular_for(customer_id)
            source, ordered = "popular", [(a, None) for a in items]
    if source != "popular":
        try:
            ranked = await state.clients["ranker"].post_json(
                "/rank",
                {
                    "customer_id": customer_id,
                    "candidates": candidates[:MAX_RANK_INPUT],
                    "k": max(1, min(len(candidates), MAX_RANK_INPUT)),
                    **(session.candidate_fields() if session is not None else {}),
                },
            )
            ordered = [(r["article_id"], r["score"]) for r in ranked["ranked"]]
            used["ranker"] = state.note_version("ranker", ranked.get("model_version"))
            ordering = ranked.get("ordering", "mmoe")
            source = "ranker"
        except (DependencyUnavailable, DependencyRejected, KeyError, TypeError) as exc:
            degraded.append("ranker")
            state.metrics.fallbacks.labels("/recommend", "ranker", "candidates").inc()
            state.log_fallback("ranker", exc)
            source, ordered = "candidates", [(c["article_id"], c["score"]) for c in candidates]
            ordering = "stage_one"

    # Filter on ids first, then build cards for the requested page only.
    matches = catalogue.compile_filter(filters)
    visible = [
        (a, score) for a, score in ordered if a in catalogue and (matches is None or matches(a))
    ]  # unknown articles cannot be shown
    cards = [catalogue.card(a, score) for a, score in visible[offset : offset + k]]
    response: dict[str, Any] = {
        "customer_id": customer_id,
        "source": source,
        "ordering": ordering,
        "cached": False,
        "degraded": degraded,
        "cold_start": cold_start,
        "age_band": band,
        "model_versions": {"candidate": used["candidate"], "ranker": used["ranker"]},
        "k": k,
        "offset": offset,
        "total": len(visible),
        "items": cards,
        "session": session.summary() if session is not None else None,
    }
    body = dumps(response)
    if not degraded:
        # The versions that answered are nearly always the ones known before: same key, not hashed again.
        await state.cache.set_raw(
            key if used == known else recommend_key(state, used, customer_id, k, offset, filters, session), body
        )
    return body
