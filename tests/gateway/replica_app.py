"""A stand-in service replica for tests/gateway/test_replicas.py: says who answered.

Run as ``uvicorn replica_app:app --host H --port P`` with ``REPLICA_ID`` set; ``POST /rank``
answers ``{"replica": REPLICA_ID}``, ``/readyz`` 200 (503 once ``/unready`` was posted)."""

from __future__ import annotations

import os

from fastapi import FastAPI, Response

app = FastAPI()
REPLICA = os.environ.get("REPLICA_ID", "?")
state = {"ready": True}


@app.get("/readyz")
def readyz(response: Response) -> dict[str, object]:
    response.status_code = 200 if state["ready"] else 503
    return {"ready": state["ready"], "model_version": "v1", "replica": REPLICA}


@app.post("/rank")
async def rank(body: dict) -> dict[str, object]:
    return {"replica": REPLICA, "k": body.get("k")}


@app.post("/unready")
def unready() -> dict[str, bool]:
    state["ready"] = False
    return state
