"""``hmrec evaluate --sessions``: does a session's browsing improve the next feed?

For each day d of the held-out week and each customer who buys on d, the session is their
events of the 7 days before d (synthetic sessions, ``pipeline/synthetic/sessions.py``, or
``--events`` drained by ``hmrec events drain``); the feed is the served pipeline (stage one
-> ranker, the published models) and MAP@12 is scored on what they buy on d. Four feeds per
query, on the same queries:

- ``customer``: the customer's feed without the session (what /recommend served before);
- ``customer+session``: with the session as ``recent_article_ids`` (what it serves now);
- ``anonymous``: an unknown visitor with no session (the cold-start feed);
- ``anonymous+session``: an unknown visitor with the session (cold start solved by it?);
- ``customer+session-bought``: the session without the very articles bought on d (how much of
  the lift is "they looked at what they then bought", how much the related browsing);
plus ``popular`` (last week's best sellers) for reference. Ratios come with a 95 % paired
bootstrap interval over queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from pipeline.ranking_metrics import apk, paired_ratio_interval
from services.gateway import SessionEvent, anonymous_customer_id, weighted_articles

FEEDS = ("customer", "customer+session", "anonymous", "anonymous+session", "customer+session-bought", "popular")
MODEL_FEEDS = FEEDS[:5]
RATIOS = (
    ("customer+session", "customer"),
    ("anonymous+session", "anonymous"),
    ("anonymous+session", "popular"),
    ("customer+session-bought", "customer"),
)
SESSION_DAYS = 7


@dataclass
class Query:
    customer_id: str
    day: date
    truth: set[str]
    seeds: list[str]


def _midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def build_queries(week: pd.DataFrame, events: pd.DataFrame, cutoff: date, min_type_weight: float = 0.0) -> list[Query]:
    """One query per (buyer, purchase day) of the week; seeds = the session before that day."""
    events = events.sort_values("ts", kind="stable")
    by_customer = dict(list(events.groupby("customer_id", sort=False)))
    queries = []
    for offset in range(7):
        day = cutoff + timedelta(days=offset)
        bought = week[week["t_dat"] == pd.Timestamp(day)]
        end = _midnight(day)
        for customer, rows in bought.groupby("customer_id", sort=True):
            mine = by_customer.get(customer)
            seeds: list[str] = []
            if mine is not None:
                seen = mine[(mine["ts"] < end) & (mine["ts"] >= end - SESSION_DAYS * 86400)]
                session = [
                    SessionEvent(t, a, s) for t, a, s in zip(seen["type"], seen["article_id"], seen["ts"], strict=True)
                ]
                seeds = weighted_articles(reversed(session), end, min_type_weight=min_type_weight)
            queries.append(Query(str(customer), day, set(rows["article_id"].astype(str)), seeds))
    return queries


def _feeds(
    stage_one: Any, rerank: Any, queries: list[Query], ids: list[str], with_session: str, k: int
) -> list[list[str]]:
    """The re-ranked top ``k`` for each query, asked as ``ids[i]``; ``with_session``: "none",
    "all" (the session's seeds) or "not_bought" (the seeds minus the query's purchases)."""
    recent = None
    if with_session == "all":
        recent = [q.seeds for q in queries]
    elif with_session == "not_bought":
        recent = [[a for a in q.seeds if a not in q.truth] for q in queries]
    frame = stage_one(ids, recent)
    # The same customer can be two queries (two purchase days): tell them apart for the ranker's grouping.
    position = {cid: i for i, cid in enumerate(ids)}
    ranked = rerank(frame, k, {cid: r for cid, r in zip(ids, recent, strict=True) if r} if recent else None)
    out: list[list[str]] = [[] for _ in queries]
    for cid, group in ranked.groupby("customer_id", sort=False):
        out[position[cid]] = list(group["article_id"])
    return out


def replay(queries: list[Query], stage_one: Any, rerank: Any, popular: list[str], k: int = 12) -> dict[str, np.ndarray]:
    """Average precision@k per query, per feed. ``stage_one(ids, recent)`` -> candidate frame,
    ``rerank(frame, k, recent)`` -> top-k frame (the served functions)."""
    scores: dict[str, np.ndarray] = {}
    # Queries of one day share no customer; run each day as a batch so ids are unique.
    days = sorted({q.day for q in queries})
    for feed in MODEL_FEEDS:
        aps = []
        for day in days:
            todays = [q for q in queries if q.day == day]
            anonymous = feed.startswith("anonymous")
            ids = [anonymous_customer_id(f"{q.customer_id}:{day}") if anonymous else q.customer_id for q in todays]
            session = "all" if feed.endswith("+session") else "not_bought" if feed.endswith("-bought") else "none"
            lists = _feeds(stage_one, rerank, todays, ids, session, k)
            aps += [apk(q.truth, lst, k) for q, lst in zip(todays, lists, strict=True)]
        scores[feed] = np.asarray(aps)
    ordered = [q for day in days for q in queries if q.day == day]
    scores["popular"] = np.asarray([apk(q.truth, popular, k) for q in ordered])
    return scores


def summarise(scores: dict[str, np.ndarray], queries: list[Query], seed: int = 0) -> dict[str, Any]:
    with_session = sum(bool(q.seeds) for q in queries)
    result: dict[str, Any] = {
        "queries": len(queries),
        "queries_with_a_session": with_session,
        "map@12": {feed: float(v.mean()) for feed, v in scores.items()},
        "ratios": {},
    }
    for num, den in RATIOS:
        point, lo, hi = paired_ratio_interval(scores[num], scores[den], seed=seed)
        result["ratios"][f"{num} / {den}"] = {"ratio": point, "low": lo, "high": hi}
    return result


def format_summary(result: dict[str, Any]) -> str:
    lines = [
        f"session replay: {result['queries']:,} (buyer, day) queries, "
        f"{result['queries_with_a_session']:,} with events in the 7 days before",
        "",
        f"{'feed':<20} {'MAP@12':>8}",
    ]
    lines += [f"{feed:<20} {value:>8.4f}" for feed, value in result["map@12"].items()]
    lines += ["", f"{'ratio':<36} {'value':>6}  95% interval"]
    lines += [
        f"{name:<36} {r['ratio']:>6.2f}  ({r['low']:.2f} - {r['high']:.2f})" for name, r in result["ratios"].items()
    ]
    return "\n".join(lines)


def served_functions(ctx: Any) -> tuple[Any, Any]:
    """(stage_one(ids, recent), rerank(frame, k)) with the published models, as the services
    call them; refuses (LeakageError) models trained on the scored week."""
    from pipeline.evaluation import check_model_cutoff
    from pipeline.methods.candidate import model_cutoff, pick_two_tower
    from services.candidate import StageOneConfig, TwoTowerSource, build_tables, load_two_tower, stage_one_frame
    from services.ranker import LoadedRanker
    from shared.artifacts import ArtifactError, model_dir

    folder = pick_two_tower(ctx.paths.models_dir, ctx.cutoff)
    if folder is None:
        raise ArtifactError("no two-tower model: run `hmrec train candidate` first")
    ranker_dir = model_dir(ctx.paths.models_dir, "mmoe")
    check_model_cutoff(model_cutoff(folder), ctx.cutoff, f"two-tower {folder.name}")
    check_model_cutoff(model_cutoff(ranker_dir), ctx.cutoff, f"ranker {ranker_dir.name}")
    model = load_two_tower(folder)
    config = StageOneConfig.from_dict(model.metadata.get("stage_one"))
    ds = ctx.dataset
    source = TwoTowerSource.offline(model, ds, ctx.cutoff, config.not_sold_weeks)
    tables = build_tables(
        ds.transactions, ds.customers, ds.articles, source.as_of, not_sold_weeks=config.not_sold_weeks
    )
    ranker = LoadedRanker.load(ranker_dir)
    return (lambda ids, recent: stage_one_frame(tables, source, ids, config, recent)), ranker.rerank_frame


def run_session_replay(paths: Any, cutoff: date | None, seed: int = 0, events_dir: Any = None) -> dict[str, Any]:
    """The replay on ``paths``' data and published models (see the module doc)."""
    from pipeline.evaluation import load_context
    from pipeline.event_drain import read_events
    from pipeline.synthetic.sessions import synthesise_sessions
    from shared.baselines import popular_articles
    from shared.split import label_week

    ctx = load_context(paths, cutoff=cutoff, seed=seed)
    tx = ctx.dataset.transactions
    if events_dir is not None:
        events = read_events(events_dir)
        events = events.assign(customer_id=events["customer_id"].fillna(""))
    else:
        events = synthesise_sessions(
            tx,
            ctx.dataset.articles,
            ctx.cutoff - timedelta(days=SESSION_DAYS),
            ctx.cutoff + timedelta(days=7),
            seed=seed,
        )
    week = label_week(tx, ctx.cutoff).assign(
        customer_id=lambda f: f["customer_id"].astype(str), article_id=lambda f: f["article_id"].astype(str)
    )
    queries = build_queries(week, events, ctx.cutoff)
    stage_one_fn, rerank = served_functions(ctx)
    scores = replay(queries, stage_one_fn, rerank, popular_articles(ctx.history, 12, ctx.cutoff), ctx.k)
    result = summarise(scores, queries, seed)
    result.update(
        {
            "cutoff": ctx.cutoff.isoformat(),
            "events": len(events),
            "source": str(events_dir) if events_dir is not None else f"synthetic sessions (seed {seed})",
        }
    )
    return result
