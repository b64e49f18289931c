"""POST /v1/classify, zero-shot, on the real MiniLM embedder."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.conftest import runtime_of

ONLY_EMBEDDER: dict[str, Any] = {
    "models": ["minilm-l6-v2"],
    "default_detector": "",
    "default_sam": "",
    "default_ner": "",
}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(**ONLY_EMBEDDER)), raise_server_exceptions=False) as c:
        assert c.get("/readyz").status_code == 200
        yield c


INTENTS = ["refund_request", "bug_report", "greeting"]


def test_zero_shot_ranks_the_matching_label_first(client: TestClient) -> None:
    texts = [
        "I want a refund for my order",
        "The app crashes when I open settings",
        "Hello there, good morning",
    ]
    r = client.post("/v1/classify", json={"texts": texts, "labels": INTENTS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "zero-shot" and body["model_version"] == "zero-shot"
    assert body["embedder"].startswith("minilm-l6-v2@")
    assert [res["labels"] for res in body["results"]] == [[x] for x in INTENTS]
    for res in body["results"]:
        scores = res["scores"]
        assert abs(sum(s["score"] for s in scores) - 1.0) < 1e-3
        assert scores == sorted(scores, key=lambda s: -s["score"])
        assert all(-1.0 <= s["similarity"] <= 1.0 for s in scores)


def test_descriptions_and_examples_shape_a_label(client: TestClient) -> None:
    """'positive'/'negative' alone are vague; a description and an example make them sentiment."""
    labels = [
        {"name": "positive", "description": "happy, satisfied customer", "examples": ["Love it"]},
        {"name": "negative", "description": "angry, disappointed customer"},
    ]
    r = client.post(
        "/v1/classify",
        json={
            "texts": ["Terrible service, I am very disappointed", "Great, thanks!"],
            "labels": labels,
        },
    )
    assert r.status_code == 200, r.text
    assert [res["labels"] for res in r.json()["results"]] == [["negative"], ["positive"]]


def test_multi_label_threshold_is_on_similarity(client: TestClient) -> None:
    text = "The app crashed and I want my money back"
    body = {"texts": [text], "labels": INTENTS, "multi_label": True, "top_k": 3}
    low = client.post("/v1/classify", json={**body, "threshold": 0.2}).json()["results"][0]
    high = client.post("/v1/classify", json={**body, "threshold": 0.9}).json()["results"][0]
    sims = {s["label"]: s["similarity"] for s in low["scores"]}
    assert set(low["labels"]) == {k for k, v in sims.items() if v >= 0.2}
    assert "refund_request" in low["labels"] and "greeting" not in low["labels"]
    assert high["labels"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"texts": [], "labels": INTENTS}, None),
        ({"texts": ["  "], "labels": INTENTS}, "texts[0] is empty"),
        ({"texts": ["x"]}, "either labels"),
        ({"texts": ["x"], "labels": INTENTS, "project": "p"}, "either labels"),
        ({"texts": ["x"], "labels": ["only"]}, "needs two labels"),
        ({"texts": ["x"], "labels": ["a", " "]}, "labels[1] is empty"),
        ({"texts": ["x" * 20_001], "labels": INTENTS}, "max 20000"),
        ({"texts": ["x"] * 65, "labels": INTENTS}, "at most 64"),
        (
            {
                "texts": ["x"],
                "labels": [{"name": f"l{i}", "examples": ["e"] * 20} for i in range(100)],
            },
            "at most 2000",
        ),
        ({"texts": ["x"], "labels": INTENTS, "top_k": 0}, None),
    ],
)
def test_bad_requests_are_422(client: TestClient, body: dict[str, object], message: str) -> None:
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    if message:
        assert message in err["message"]


def test_many_labels_are_embedded_in_chunks_and_cached(client: TestClient) -> None:
    """300 labels: more label phrases than the batcher queues at once (256), all answered."""
    labels = [f"topic number {i}" for i in range(299)] + ["refund_request"]
    r = client.post("/v1/classify", json={"texts": ["I want a refund"], "labels": labels})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["labels"] == ["refund_request"]
    cached = runtime_of(client).classifier._phrases
    assert {"topic number 0", "refund request"} <= set(cached)


def test_unknown_project_is_404(client: TestClient) -> None:
    r = client.post("/v1/classify", json={"texts": ["x"], "project": "nope"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_without_the_embedder_classification_says_so() -> None:
    settings = Settings(models=["en-core-web-sm"], default_detector="", default_sam="")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        r = c.post("/v1/classify", json={"texts": ["x"], "labels": INTENTS})
    assert r.status_code == 404
    assert "minilm-l6-v2" in r.json()["error"]["message"]
