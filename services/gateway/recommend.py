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

from dataclasses import dataclass, field
from typing import Any

from services.gateway.cache import cache_key, dumps, mark_cached
from services.gateway.clients import DependencyRejected, DependencyUnavailable
from services.gateway.events import SessionView
from services.gateway.state import GatewayState
from shared.contract.schemas import MAX_RANK_INPUT, SearchFilters


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


@dataclass
class _Feed:
    """What one /recommend answer is made of, filled in as the dependencies answer or fail."""

    used: dict[str, str | None]
    source: str = "ranker"
    ordering: str | None = None
    ordered: list[tuple[str, float | None]] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)
    cold_start: bool | None = None
    band: str | None = None

    def popular(self, state: GatewayState, customer_id: str) -> None:
        self.band, items = state.catalogue.popular_for(customer_id)
        self.source, self.ordered = "popular", [(a, None) for a in items]


@dataclass
class _StageOne:
    """The candidate service's list as the gateway uses it: ids and scores (the fallback order)
    and the body parts that pass it on to the ranker, in the wire it came in (shared.contract.wire)."""

    article_ids: list[str]
    scores: list[float]
    rank_fields: dict[str, Any]
    columns: bool


_NO_CANDIDATES = _StageOne([], [], {"candidates": []}, False)


def _read_stage_one(answer: dict[str, Any]) -> _StageOne:
    """A ``/candidates`` answer in either wire: columns (what the gateway asks for), or objects
    (a service that does not know ``wire``). At most MAX_RANK_INPUT go on to the ranker."""
    if "article_ids" in answer:
        ids: list[str] = answer["article_ids"]
        scores: list[float] = answer["scores"]
        sources: dict[str, list[float]] = answer["sources"]
        if len(ids) != len(scores) or not isinstance(sources, dict):
            raise TypeError("a /candidates answer whose columns differ in length")
        fields: dict[str, Any] = {"article_ids": ids, "scores": scores, "sources": sources}
        if len(ids) > MAX_RANK_INPUT:
            fields = {name: values[:MAX_RANK_INPUT] for name, values in fields.items() if name != "sources"}
            fields["sources"] = {name: values[:MAX_RANK_INPUT] for name, values in sources.items()}
        return _StageOne(ids, scores, fields, True)
    candidates: list[dict[str, Any]] = answer["candidates"]
    return _StageOne(
        [c["article_id"] for c in candidates],
        [c["score"] for c in candidates],
        {"candidates": candidates[:MAX_RANK_INPUT]},
        False,
    )


async def _stage_one(state: GatewayState, feed: _Feed, customer_id: str, session: SessionView | None) -> _StageOne:
    """The candidate service's list; on failure the age band's best sellers (degraded)."""
    try:
        answer = await state.clients["candidate"].post_json(
            "/candidates?wire=columns",
            {
                "customer_id": customer_id,
                "k": state.settings.num_candidates,
                **(session.candidate_fields() if session is not None else {}),
            },
        )
        found = _read_stage_one(answer)
        feed.used["candidate"] = state.note_version("candidate", answer.get("model_version"))
        feed.cold_start = bool(answer.get("cold_start", False))
    except (DependencyUnavailable, DependencyRejected, KeyError, TypeError) as exc:
        feed.degraded.append("candidate")
        state.metrics.fallbacks.labels("/recommend", "candidate", "popular").inc()
        state.log_fallback("candidate", exc)
        feed.popular(state, customer_id)
        return _NO_CANDIDATES
    if not found.article_ids:
        # Nothing to rank (a service that never returns empty lists should not get here):
        # the age band's best sellers beat an empty page. Not a failure, so not degraded.
        feed.popular(state, customer_id)
    return found


async def _rank(
    state: GatewayState, feed: _Feed, customer_id: str, found: _StageOne, session: SessionView | None
) -> None:
    """The ranker's order of the candidates; on failure stage-one order as is (degraded)."""
    try:
        ranked = await _call_ranker(state, customer_id, found, session)
        if "article_ids" in ranked:
            feed.ordered = list(zip(ranked["article_ids"], ranked["scores"], strict=True))
        else:
            feed.ordered = [(r["article_id"], r["score"]) for r in ranked["ranked"]]
        feed.used["ranker"] = state.note_version("ranker", ranked.get("model_version"))
        feed.ordering = ranked.get("ordering", "mmoe")
        feed.source = "ranker"
    except (DependencyUnavailable, DependencyRejected, KeyError, TypeError, ValueError) as exc:
        feed.degraded.append("ranker")
        state.metrics.fallbacks.labels("/recommend", "ranker", "candidates").inc()
        state.log_fallback("ranker", exc)
        feed.source, feed.ordered = "candidates", list(zip(found.article_ids, found.scores, strict=True))
        feed.ordering = "stage_one"


async def _call_ranker(state: GatewayState, customer_id: str, found: _StageOne, session: SessionView | None) -> Any:
    """``/rank`` in the wire stage one came in. A ranker that refuses columns with a 422 (one
    older than ``wire``, during a rolling deploy) is asked again with the same list as objects."""
    common = {
        "customer_id": customer_id,
        "k": max(1, min(len(found.article_ids), MAX_RANK_INPUT)),
        **(session.candidate_fields() if session is not None else {}),
    }
    client = state.clients["ranker"]
    if not found.columns:
        return await client.post_json("/rank", {**common, **found.rank_fields})
    try:
        return await client.post_json("/rank?wire=columns", {**common, **found.rank_fields})
    except DependencyRejected as exc:
        if exc.status != 422:
            raise
        return await client.post_json("/rank", {**common, "candidates": _as_objects(found.rank_fields)})


def _as_objects(columns: dict[str, Any]) -> list[dict[str, Any]]:
    """RankColumnsRequest's candidates as RankRequest's (a source's 0 is left out, as stage one does)."""
    sources = columns["sources"].items()
    return [
        {"article_id": a, "score": s, "sources": {name: values[i] for name, values in sources if values[i] > 0}}
        for i, (a, s) in enumerate(zip(columns["article_ids"], columns["scores"], strict=True))
    ]


def _response(
    state: GatewayState,
    feed: _Feed,
    customer_id: str,
    k: int,
    offset: int,
    filters: SearchFilters,
    session: SessionView | None,
) -> dict[str, Any]:
    # Filter on ids first, then build cards for the requested page only.
    catalogue = state.catalogue
    matches = catalogue.compile_filter(filters)
    visible = [
        (a, score) for a, score in feed.ordered if a in catalogue and (matches is None or matches(a))
    ]  # unknown articles cannot be shown
    return {
        "customer_id": customer_id,
        "source": feed.source,
        "ordering": feed.ordering,
        "cached": False,
        "degraded": feed.degraded,
        "cold_start": feed.cold_start,
        "age_band": feed.band,
        "model_versions": {"candidate": feed.used["candidate"], "ranker": feed.used["ranker"]},
        "k": k,
        "offset": offset,
        "total": len(visible),
        "items": [catalogue.card(a, score) for a, score in visible[offset : offset + k]],
        "session": session.summary() if session is not None else None,
    }


async def recommend(
    state: GatewayState,
    customer_id: str,
    k: int,
    offset: int,
    filters: SearchFilters,
    session: SessionView | None = None,
) -> bytes:
    """The response body as JSON bytes (cached bytes are served as they are)."""
    known = {
        "candidate": state.versions.get("candidate"),
        "ranker": state.versions.get("ranker"),
        "catalogue": state.catalogue.version,
    }
    key = recommend_key(state, known, customer_id, k, offset, filters, session)
    hit = await state.cache.get_raw(key)
    if hit is not None:
        return mark_cached(hit)

    feed = _Feed(used={"candidate": None, "ranker": None, "catalogue": state.catalogue.version})
    found = await _stage_one(state, feed, customer_id, session)
    if feed.source != "popular":
        await _rank(state, feed, customer_id, found, session)
    body = dumps(_response(state, feed, customer_id, k, offset, filters, session))
    if not feed.degraded:
        # The versions that answered are nearly always the ones known before: same key, not hashed again.
        used = feed.used
        await state.cache.set_raw(
            key if used == known else recommend_key(state, used, customer_id, k, offset, filters, session), body
        )
    return body
