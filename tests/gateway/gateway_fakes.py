"""In-process fakes of the candidate, ranker and search services, served by uvicorn on
loopback (real HTTP, real sockets), and a hand-made tiny catalogue.

Each fake keeps a ``behaviour`` switch: "ok", "error" (HTTP 500) or "slow" (sleeps past any
gateway timeout), and counts its calls, so tests can break one dependency at a time.
The fakes are deliberately different in order so a test can tell who served a list:
candidates come in id order 1..8, the ranker reverses them.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import uvicorn
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.gateway.catalogue import Catalogue, build_catalogue
from shared.contract.schemas import CandidateRequest, RankRequest, TextSearchRequest
from shared.contract.wire import RankColumnsRequest

ARTICLES = [f"01000000{i:02d}" for i in range(1, 9)]
CUSTOMER_YOUNG = "a" * 63 + "1"  # age 22 -> band 16-24
CUSTOMER_MID = "a" * 63 + "2"  # age 40 -> band 35-44
CUSTOMER_UNKNOWN_AGE = "b" * 64  # age NaN -> band unknown
CUSTOMER_NEW = "c" * 64  # not in customers.csv


@dataclass
class FakeControl:
    behaviour: str = "ok"  # ok | error | slow | empty (candidate: no candidates) | photos_pending (search)
    calls: int = 0
    last_request: dict[str, Any] = field(default_factory=dict)
    version: str = "v1"
    # Answer ``?wire=columns`` in columns (shared.contract.wire) as the real services do; False: a
    # service that ignores ``wire`` and answers objects (an older one, or a benchmark fake).
    columns: bool = True

    async def act(self) -> None:
        self.calls += 1
        if self.behaviour == "error":
            raise HTTPException(500, "fake failure")
        if self.behaviour == "slow":
            await asyncio.sleep(3.0)
        if self.behaviour == "photos_pending":  # what the search service answers on a text-only index
            raise HTTPException(
                503,
                "indexing photos, 40 % (4800 of 12000); image search opens when they are done, text search works now",
                headers={"Retry-After": "30"},
            )


def fake_candidate(control: FakeControl) -> FastAPI:
    app = FastAPI()

    @app.get("/readyz")
    def readyz() -> dict[str, Any]:
        return {"ready": True, "service": "candidate", "model_version": control.version}

    @app.post("/candidates")
    async def candidates(req: CandidateRequest, wire: str = "objects") -> dict[str, Any]:
        await control.act()
        control.last_request = req.model_dump()
        # scores 0.9, 0.8, ... in article order; an id the catalogue lacks comes third
        ids = ARTICLES[:2] + ["0999999999"] + ARTICLES[2:]
        if control.behaviour == "empty":
            ids = []
        ids = ids[: req.k]
        scores = [round(0.9 - 0.1 * i, 2) for i in range(len(ids))]
        head: dict[str, Any] = {"customer_id": req.customer_id, "model_version": control.version}
        head["cold_start"] = req.customer_id == CUSTOMER_NEW
        if wire == "columns" and control.columns:
            repurchase = [1.0 if i == 0 else 0.0 for i in range(len(ids))]
            return {
                **head,
                "article_ids": ids,
                "scores": scores,
                "sources": {"two_tower": scores, "repurchase": repurchase},
            }
        return {
            **head,
            "candidates": [
                {"article_id": a, "score": s, "sources": {"two_tower": s, **({"repurchase": 1.0} if i == 0 else {})}}
                for i, (a, s) in enumerate(zip(ids, scores, strict=True))
            ],
        }

    return app


def fake_ranker(control: FakeControl) -> FastAPI:
    app = FastAPI()

    @app.get("/readyz")
    def readyz() -> dict[str, Any]:
        return {"ready": True, "service": "ranker", "model_version": control.version}

    @app.post("/rank")
    async def rank(request: Request, wire: str = "objects") -> dict[str, Any]:
        raw = await request.body()
        if wire == "columns" and control.columns:
            columns = RankColumnsRequest.model_validate_json(raw)
            await control.act()
            control.last_request = columns.model_dump()
            order = list(reversed(range(len(columns.article_ids))))[: columns.k]
            ids = [columns.article_ids[i] for i in order]
            return {"model_version": control.version, "article_ids": ids, "scores": [float(i) for i in range(len(ids))]}
        try:
            req = RankRequest.model_validate_json(raw)
        except ValidationError as exc:  # as FastAPI refuses a body that is not a RankRequest
            raise HTTPException(422, exc.errors(include_url=False, include_input=False)) from None
        await control.act()
        control.last_request = req.model_dump()
        ranked = list(reversed(req.candidates))[: req.k]
        return {
            "model_version": control.version,
            "ranked": [
                {"article_id": c.article_id, "score": float(i), "task_scores": {"purchase": 0.5}}
                for i, c in enumerate(ranked)
            ],
        }

    return app


def fake_search(control: FakeControl) -> FastAPI:
    app = FastAPI()
    facets = {"colour_group_name": [{"value": "Black", "count": 2}]}

    @app.get("/readyz")
    def readyz() -> dict[str, Any]:
        return {"ready": True, "service": "search", "index_version": control.version}

    @app.post("/search/text")
    async def text(req: TextSearchRequest) -> dict[str, Any]:
        await control.act()
        control.last_request = req.model_dump()
        results = [ARTICLES[2], "0999999999", ARTICLES[0], ARTICLES[4]][: req.k]
        return {
            "index_version": control.version,
            "mode": req.mode,
            "personalised": req.customer_id is not None,
            "results": [{"article_id": a, "score": 1.0 - 0.1 * i} for i, a in enumerate(results)],
            "facets": facets,
        }

    @app.post("/search/image")
    async def image(
        file: UploadFile = File(...), k: int = Form(12), filters: str = Form("{}"), customer_id: str | None = Form(None)
    ) -> Any:
        await control.act()
        data = await file.read()
        control.last_request = {
            "bytes": len(data),
            "k": k,
            "filters": filters,
            "customer_id": customer_id,
            "filename": file.filename,
        }
        if not data.startswith(b"\xff\xd8"):
            return JSONResponse({"detail": "not a JPEG, PNG or WebP image"}, status_code=415)
        return {
            "index_version": control.version,
            "mode": "image",
            "personalised": False,
            "results": [{"article_id": a, "score": 0.5} for a in ARTICLES[5:7]][:k],
            "facets": facets,
        }

    return app


class ServerThread:
    """Runs an ASGI app with uvicorn on a free loopback port in a daemon thread."""

    def __init__(self, app: FastAPI) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake service did not start")
            time.sleep(0.01)
        return self

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def closed_port() -> int:
    """A loopback port with nothing listening (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=0.2).ping())
    except redis.RedisError:
        return False


def tiny_frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """8 articles, 3 customers, transactions over 3 weeks (last day 2020-09-22)."""
    types = ["Dress", "Dress", "Trousers", "Sweater", "Dress", "Trousers", "Sweater", "Dress"]
    colours = ["Black", "Red", "Black", "Blue", "Red", "Black", "Blue", "Black"]
    articles = pd.DataFrame(
        {
            "article_id": ARTICLES,
            "prod_name": [f"Item {i}" for i in range(1, 9)],
            "product_type_name": types,
            "product_group_name": ["Garment Full body" if t == "Dress" else "Garment Upper body" for t in types],
            "colour_group_name": colours,
            "perceived_colour_master_name": colours,
            "department_name": ["Dept"] * 8,
            "index_group_name": ["Ladieswear"] * 8,
            "graphical_appearance_name": ["Solid"] * 8,
            "garment_group_name": ["Jersey"] * 8,
            "detail_desc": [f"Description {i}" for i in range(1, 9)],
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": [CUSTOMER_YOUNG, CUSTOMER_MID, CUSTOMER_UNKNOWN_AGE],
            "age": np.array([22, 40, np.nan], dtype=np.float32),
        }
    )
    rows = [
        # young: article 5 twice, 6 once in the last two weeks
        ("2020-09-22", CUSTOMER_YOUNG, ARTICLES[4], 0.02),
        ("2020-09-20", CUSTOMER_YOUNG, ARTICLES[4], 0.04),
        ("2020-09-15", CUSTOMER_YOUNG, ARTICLES[5], 0.03),
        # mid: article 2 three times in the window, article 1 once only *before* it
        ("2020-09-21", CUSTOMER_MID, ARTICLES[1], 0.05),
        ("2020-09-10", CUSTOMER_MID, ARTICLES[1], 0.05),
        ("2020-09-09", CUSTOMER_MID, ARTICLES[1], 0.05),
        ("2020-09-01", CUSTOMER_MID, ARTICLES[0], 0.10),
        # unknown age: article 3 once
        ("2020-09-12", CUSTOMER_UNKNOWN_AGE, ARTICLES[2], 0.01),
    ]
    transactions = pd.DataFrame(rows, columns=["t_dat", "customer_id", "article_id", "price"])
    transactions["t_dat"] = pd.to_datetime(transactions["t_dat"])
    transactions["price"] = transactions["price"].astype(np.float32)
    return articles, customers, transactions


def tiny_catalogue(images_dir: Path) -> Catalogue:
    """The tiny catalogue; articles 1 and 2 have (fake) photos under ``images_dir``."""
    for aid in ARTICLES[:2]:
        (images_dir / aid[:3]).mkdir(parents=True, exist_ok=True)
        (images_dir / aid[:3] / f"{aid}.jpg").write_bytes(b"\xff\xd8fake-jpeg-" + aid.encode())
    articles, customers, transactions = tiny_frames()
    return build_catalogue(
        articles, customers, transactions, images_dir, popular_weeks=2, popular_per_band=5, version="cat1"
    )
