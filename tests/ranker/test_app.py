"""The ranker service contract: /rank, unknown ids, 422s, readiness, hot swap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from services.ranker.app import create_app
from services.ranker.serving import LoadedRanker
from services.ranker.settings import RankerSettings
from shared.artifacts import publish
from tests.ranker.conftest import A1, A2, A3, A4, C1, export_random_ranker

UNKNOWN_CUSTOMER = "e" * 64


def client_for(models_dir: Path, **kw) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(create_app(RankerSettings(models_dir=models_dir, poll_interval_s=3600, **kw)))


def body(customer: str = C1, k: int = 3, candidates: list[tuple[str, float]] | None = None) -> dict:
    cands = candidates if candidates is not None else [(A1, 0.9), (A2, 0.5), (A3, 0.7), (A4, 0.1)]
    return {"customer_id": customer, "k": k, "candidates": [{"article_id": a, "score": s} for a, s in cands]}


def test_rank_returns_top_k_of_the_input_with_task_scores(models_dir: Path) -> None:
    with client_for(models_dir) as client:
        resp = client.post("/rank", json=body(k=3))
        assert resp.status_code == 200, resp.text
        data = resp.json()
        assert data["model_version"] == "v1"
        ranked = data["ranked"]
        assert len(ranked) == 3
        assert {r["article_id"] for r in ranked} <= {A1, A2, A3, A4}
        scores = [r["score"] for r in ranked]
        assert scores == sorted(scores, reverse=True)
        assert set(ranked[0]["task_scores"]) == {"purchase", "online", "revenue"}
        # combined = 1.0 * purchase + 0.25 * online (the artifact's weights)
        first = ranked[0]
        assert first["score"] == pytest.approx(first["task_scores"]["purchase"] + 0.25 * first["task_scores"]["online"])
        # Same order as the batch path (one scoring function for both).
        ranker = LoadedRanker.load(models_dir / "mmoe" / "v1")
        direct = ranker.rank(C1, [A1, A2, A3, A4], [0.9, 0.5, 0.7, 0.1], 3)
        assert [r["article_id"] for r in ranked] == direct.article_ids


def test_unknown_customer_and_articles_are_ranked_not_errors(models_dir: Path) -> None:
    with client_for(models_dir) as client:
        resp = client.post("/rank", json=body(UNKNOWN_CUSTOMER, 5, [("123", 0.3), (A1, 0.2), ("9999999999", 0.1)]))
        assert resp.status_code == 200, resp.text
        ids = [r["article_id"] for r in resp.json()["ranked"]]
        assert sorted(ids) == sorted(["0000000123", A1, "9999999999"])  # k=5 > n=3: all of them


def test_empty_candidate_list_gives_empty_ranking(models_dir: Path) -> None:
    with client_for(models_dir) as client:
        resp = client.post("/rank", json=body(candidates=[]))
        assert resp.status_code == 200 and resp.json()["ranked"] == []


@pytest.mark.parametrize(
    "bad",
    [
        {"customer_id": "not-hex", "k": 3, "candidates": []},
        {"customer_id": C1, "k": 0, "candidates": []},
        {"customer_id": C1, "k": 2001, "candidates": []},
        {"customer_id": C1, "k": 3, "candidates": [{"article_id": "12ab", "score": 1.0}]},
        {"customer_id": C1, "k": 3, "candidates": [{"article_id": A1}]},
        {"customer_id": C1, "k": 3, "candidates": [{"article_id": A1, "score": 1.0}] * 2001},
        {"customer_id": C1, "k": 3, "candidates": [], "extra": 1},
    ],
)
def test_bad_requests_are_422(models_dir: Path, bad: dict) -> None:
    with client_for(models_dir) as client:
        resp = client.post("/rank", json=bad)
        assert resp.status_code == 422, resp.text


def test_non_finite_score_is_422_with_a_message(models_dir: Path) -> None:
    with client_for(models_dir) as client:
        raw = '{"customer_id": "' + C1 + '", "k": 2, "candidates": [{"article_id": "1", "score": NaN}]}'
        resp = client.post("/rank", content=raw, headers={"content-type": "application/json"})
        assert resp.status_code == 422
        assert "finite" in resp.text


def test_huge_finite_scores_still_give_finite_json(models_dir: Path) -> None:
    # Found by the e2e fuzzer: 3.3e271 overflowed the float32 features into NaN.
    with client_for(models_dir) as client:
        resp = client.post("/rank", json=body(candidates=[(A1, 3.3e271), (A2, -1e308), (A3, 0.5)]))
        assert resp.status_code == 200
        ranked = resp.json()["ranked"]
        assert all(isinstance(r["score"], float) for r in ranked)
        assert all(isinstance(v, float) for r in ranked for v in r["task_scores"].values())


def test_2000_candidates_are_accepted(models_dir: Path) -> None:
    cands = [(str(i + 1), float(i % 97) / 97) for i in range(2000)]
    with client_for(models_dir) as client:
        resp = client.post("/rank", json=body(k=2000, candidates=cands))
        assert resp.status_code == 200
        assert len(resp.json()["ranked"]) == 2000


def columns_of(request: dict) -> dict:
    """A RankRequest as shared.contract.wire.RankColumnsRequest (``?wire=columns``)."""
    cands = request["candidates"]
    names = sorted({name for c in cands for name in c.get("sources", {})})
    return {
        "customer_id": request["customer_id"],
        "k": request["k"],
        "article_ids": [c["article_id"] for c in cands],
        "scores": [c["score"] for c in cands],
        "sources": {n: [c.get("sources", {}).get(n, 0.0) for c in cands] for n in names},
    }


def test_columns_wire_ranks_exactly_as_objects(models_dir: Path) -> None:
    rng = np.random.default_rng(0)
    arts = [A1, A2, A3, A4, "123", A2]  # an unknown article, and a repeated one
    cands = [
        {
            "article_id": a,
            "score": float(rng.normal()),
            "sources": {"two_tower": float(rng.random()), **({"repurchase": 1.5} if i % 2 else {})},
        }
        for i, a in enumerate(arts)
    ]
    request = {"customer_id": C1, "k": 4, "candidates": cands, "recent_article_ids": [A3]}
    with client_for(models_dir) as client:
        objects = client.post("/rank", json=request).json()
        resp = client.post(
            "/rank", params={"wire": "columns"}, json={**columns_of(request), "recent_article_ids": [A3]}
        )
        assert resp.status_code == 200, resp.text
        columns = resp.json()
    assert set(columns) == {"model_version", "ordering", "article_ids", "scores"}
    assert columns["article_ids"] == [r["article_id"] for r in objects["ranked"]]
    assert columns["scores"] == [r["score"] for r in objects["ranked"]]  # to the bit
    assert (columns["model_version"], columns["ordering"]) == (objects["model_version"], objects["ordering"])


@pytest.mark.parametrize(
    "bad",
    [
        {"customer_id": C1, "article_ids": [A1, A2], "scores": [0.5]},
        {"customer_id": C1, "article_ids": [A1], "scores": [0.5], "sources": {"two_tower": [0.1, 0.2]}},
        {"customer_id": C1, "article_ids": [A1], "scores": [0.5], "sources": {"mystery": [0.1]}},
        {"customer_id": C1, "article_ids": [A1], "scores": [0.5], "sources": {"two_tower": [-1.0]}},
        {"customer_id": C1, "article_ids": ["12ab"], "scores": [0.5]},
        {"customer_id": C1, "candidates": [{"article_id": A1, "score": 0.5}]},
        {"customer_id": C1, "article_ids": [A1] * 2001, "scores": [0.5] * 2001},
    ],
)
def test_bad_columns_requests_are_422(models_dir: Path, bad: dict) -> None:
    with client_for(models_dir) as client:
        resp = client.post("/rank", params={"wire": "columns"}, json=bad)
        assert resp.status_code == 422, resp.text


def test_non_finite_column_score_is_422_with_a_message(models_dir: Path) -> None:
    with client_for(models_dir) as client:
        raw = '{"customer_id": "' + C1 + '", "article_ids": ["1", "2"], "scores": [0.5, Infinity]}'
        resp = client.post("/rank?wire=columns", content=raw, headers={"content-type": "application/json"})
        assert resp.status_code == 422 and "finite" in resp.text and "0000000002" in resp.text


def test_health_and_not_ready_without_a_model(tmp_path: Path, models_dir: Path) -> None:
    with client_for(tmp_path / "empty") as client:
        assert client.get("/livez").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert client.post("/rank", json=body()).status_code == 503
    with client_for(models_dir) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["model_version"] == "v1" and ready.json()["tasks"] == ["purchase", "online", "revenue"]


def test_hot_swap_to_a_new_version_and_a_broken_one_keeps_serving(models_dir: Path, shop_store) -> None:  # type: ignore[no-untyped-def]
    app = create_app(RankerSettings(models_dir=models_dir, poll_interval_s=3600))
    with TestClient(app) as client:
        before = client.post("/rank", json=body(k=4)).json()
        assert before["model_version"] == "v1"
        export_random_ranker(models_dir, shop_store, "v2", seed=7)  # publishes CURRENT = v2
        assert app.state.slot.reload() is True
        after = client.post("/rank", json=body(k=4)).json()
        assert after["model_version"] == "v2"
        assert [r["score"] for r in after["ranked"]] != [r["score"] for r in before["ranked"]]
        # v3 is published but broken (weights missing): the load fails, v2 keeps serving.
        export_random_ranker(models_dir, shop_store, "v3", seed=8, make_current=False)
        (models_dir / "mmoe" / "v3" / "model" / "mmoe_weights.npz").unlink()
        publish(models_dir, "mmoe", "v3")
        assert app.state.slot.reload() is False
        assert "v3" in app.state.slot.last_error
        assert client.post("/rank", json=body()).json()["model_version"] == "v2"


def test_score_weights_override_and_validation(models_dir: Path) -> None:
    with client_for(models_dir, score_weights={"revenue": 1.0}) as client:
        r = client.post("/rank", json=body(k=4)).json()["ranked"]
        assert [x["score"] for x in r] == pytest.approx([x["task_scores"]["revenue"] for x in r])
    with pytest.raises(ValueError):
        RankerSettings(score_weights={"purchase": 0.0})
    with pytest.raises(ValueError):
        RankerSettings(score_weights={"purchase": float("nan")})


def test_artifact_with_another_feature_schema_is_refused(models_dir: Path) -> None:
    schema = models_dir / "mmoe" / "v1" / "feature_schema.json"
    data = json.loads(schema.read_text())
    data["feature_names"] = data["feature_names"][:-1]
    schema.write_text(json.dumps(data))
    with client_for(models_dir) as client:
        assert client.get("/readyz").status_code == 503
        assert "schema" in client.get("/readyz").json()["last_error"]


def test_duplicate_candidates_are_ranked_once(models_dir: Path) -> None:
    ranker = LoadedRanker.load(models_dir / "mmoe" / "v1")
    out = ranker.rank(C1, [A1, A2, A1], np.array([0.9, 0.5, 0.1]), 10)
    assert sorted(out.article_ids) == [A1, A2]
