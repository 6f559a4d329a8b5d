"""The candidate service contract (TestClient, lifespan runs) and hot swap."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from services.candidate.app import create_app
from services.candidate.serving import merge_history
from services.candidate.settings import CandidateSettings
from shared.artifacts import publish

pytestmark = pytest.mark.slow

UNKNOWN = "f" * 64


@pytest.fixture(scope="module")
def models(trained, tmp_path_factory):
    """A private copy of the trained models dir, for the read-only contract tests."""
    target = tmp_path_factory.mktemp("service") / "models"
    shutil.copytree(trained, target)
    return target


@pytest.fixture(scope="module")
def client(models):
    app = create_app(CandidateSettings(models_dir=models, poll_interval_s=3600))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def own_models(trained, tmp_path):
    target = tmp_path / "models"
    shutil.copytree(trained, target)
    return target


def a_known_customer(models) -> str:
    return str(pd.read_parquet(models / "two_tower" / "v1" / "customers_vocab.parquet")["customer_id"].iloc[0])


def test_health(client):
    assert client.get("/livez").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model_version"] == "v1"


def test_known_customer_gets_the_multi_source_list(client, models):
    r = client.post("/candidates", json={"customer_id": a_known_customer(models), "k": 25})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == "v1" and body["cold_start"] is False
    cands = body["candidates"]
    assert len(cands) == 25 and len({c["article_id"] for c in cands}) == 25
    assert all(-1.0001 <= c["score"] <= 1.0001 for c in cands)
    assert all(len(c["article_id"]) == 10 and c["sources"] for c in cands)
    # stage-one order: the customer's own purchases come first
    assert "repurchase" in cands[0]["sources"]
    assert {s for c in cands for s in c["sources"]} >= {"repurchase", "two_tower"}


def test_unknown_customer_is_cold_start_with_trending_and_best_sellers(client, models):
    r = client.post("/candidates", json={"customer_id": UNKNOWN, "k": 1000})
    assert r.status_code == 200
    body = r.json()
    assert body["cold_start"] is True
    found = {s for c in body["candidates"] for s in c["sources"]}
    assert found <= {"two_tower", "trending", "popular"} and "popular" in found
    popular = [c["article_id"] for c in body["candidates"] if "popular" in c["sources"]]
    assert len(popular) == 12


def test_unknown_customer_with_history_gets_a_personal_vector(client, models):
    arts = pd.read_parquet(models / "two_tower" / "v1" / "articles_vocab.parquet")["article_id"]
    r1 = client.post("/candidates", json={"customer_id": UNKNOWN, "k": 10, "recent_article_ids": [arts.iloc[0]]})
    r2 = client.post(
        "/candidates", json={"customer_id": UNKNOWN, "k": 10, "recent_article_ids": [arts.iloc[-1].lstrip("0")]}
    )  # unpadded id
    assert r1.status_code == r2.status_code == 200
    assert r1.json()["cold_start"] is True and len(r1.json()["candidates"]) == 10
    # a different history gives a different list: the vector comes from the history
    assert r1.json()["candidates"] != r2.json()["candidates"]


@pytest.mark.parametrize(
    "payload",
    [
        {"customer_id": UNKNOWN, "k": 0},
        {"customer_id": UNKNOWN, "k": 1001},
        {"customer_id": "not-a-customer", "k": 5},
        {"customer_id": UNKNOWN, "k": 5, "extra": 1},
        {"customer_id": UNKNOWN, "k": 5, "recent_article_ids": ["abc"]},
    ],
)
def test_bad_requests_are_422(client, payload):
    r = client.post("/candidates", json=payload)
    assert r.status_code == 422, r.text


def test_hot_swap_and_a_broken_version_keeps_the_old(own_models):
    models = own_models
    app = create_app(CandidateSettings(models_dir=models, poll_interval_s=3600))
    with TestClient(app) as client:
        _swap(client, models)


def _swap(client, models):
    slot = client.app.state.slot
    assert client.get("/readyz").json()["model_version"] == "v1"
    root = models / "two_tower"
    shutil.copytree(root / "v1", root / "v2")
    publish(models, "two_tower", "v2")
    assert slot.reload() is True
    assert client.get("/readyz").json()["model_version"] == "v2"
    body = client.post("/candidates", json={"customer_id": UNKNOWN, "k": 3}).json()
    assert body["model_version"] == "v2"

    # v3: complete metadata but a corrupt index -> load fails, v2 keeps serving
    shutil.copytree(root / "v1", root / "v3")
    np.save(root / "v3" / "article_embeddings.npy", np.zeros((3, 2), np.float32))
    publish(models, "two_tower", "v3")
    assert slot.reload() is False
    ready = client.get("/readyz").json()
    assert ready["model_version"] == "v2" and "v3" in ready["last_error"]
    assert client.post("/candidates", json={"customer_id": UNKNOWN, "k": 3}).json()["model_version"] == "v2"


def test_not_ready_without_a_model(tmp_path):
    app = create_app(CandidateSettings(models_dir=tmp_path, poll_interval_s=3600))
    with TestClient(app) as c:
        assert c.get("/readyz").status_code == 503
        r = c.post("/candidates", json={"customer_id": UNKNOWN, "k": 3})
        assert r.status_code == 503 and "no two-tower model" in r.json()["detail"]


def test_merge_history():
    # recent [7, 0 (unknown id), 3] first, then stored [3, 5]: distinct, padded to 4
    assert merge_history(np.array([7, 0, 3]), np.array([3, 5, 0, 0]), 4).tolist() == [7, 3, 5, 0]
    assert merge_history(np.array([1, 2, 3]), np.array([4, 5]), 2).tolist() == [1, 2]


def test_customer_without_purchases_gets_their_age_bands_trending_items(client, models, tiny_dataset):
    from services.candidate.stage_one import StageOneTables
    from shared.age_bands import baseline_band_index

    tables = StageOneTables.load(models / "two_tower" / "v1" / "stage_one")
    bought = set(tiny_dataset.transactions["customer_id"].astype(str))
    quiet = tiny_dataset.customers[~tiny_dataset.customers["customer_id"].astype(str).isin(bought)]
    quiet = quiet[quiet["age"].notna()]
    if quiet.empty:
        pytest.skip("every tiny customer with an age bought something")
    row = quiet.iloc[0]
    band = int(baseline_band_index(np.array([row["age"]], dtype=float))[0])
    trending = [str(tables.article_ids[a]) for a in tables.trend_article[band, :30] if a >= 0]
    body = client.post("/candidates", json={"customer_id": str(row["customer_id"]), "k": 1000}).json()
    assert body["cold_start"] is True
    assert {c["article_id"] for c in body["candidates"] if "trending" in c["sources"]} == set(trending)


@pytest.mark.parametrize("recent", [None, "first-two"])
def test_columns_wire_is_the_objects_answer_as_columns(client, models, recent):
    """``?wire=columns`` (what the gateway asks for): the same list, scores to the bit, and each
    source as the float32 the ranker reads (0 where the objects leave it out)."""
    customer = a_known_customer(models)
    request = {"customer_id": customer, "k": 1000}
    objects = client.post("/candidates", json=request).json()
    if recent:
        request["recent_article_ids"] = [c["article_id"] for c in objects["candidates"][-2:]]
        objects = client.post("/candidates", json=request).json()
    r = client.post("/candidates", params={"wire": "columns"}, json=request)
    assert r.status_code == 200, r.text
    columns = r.json()
    assert set(columns) == {"customer_id", "model_version", "cold_start", "article_ids", "scores", "sources"}
    assert (columns["customer_id"], columns["model_version"], columns["cold_start"]) == (
        objects["customer_id"],
        objects["model_version"],
        objects["cold_start"],
    )
    cands = objects["candidates"]
    assert columns["article_ids"] == [c["article_id"] for c in cands]
    assert columns["scores"] == [c["score"] for c in cands]
    assert set(columns["sources"]) == {"two_tower", "repurchase", "copurchase", "variant", "trending", "popular"}
    for name, values in columns["sources"].items():
        expected = np.array([c["sources"].get(name, 0.0) for c in cands], dtype=np.float32)
        np.testing.assert_array_equal(np.asarray(values, dtype=np.float32), expected)
    assert client.post("/candidates", params={"wire": "rows"}, json=request).status_code == 422
