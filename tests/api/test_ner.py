"""POST /v1/ner on the real spaCy and PII models."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def spans(
    client: TestClient, texts: list[str], model: str | None = None
) -> list[list[dict[str, Any]]]:
    body: dict[str, object] = {"texts": texts}
    if model:
        body["model"] = model
    r = client.post("/v1/ner", json=body)
    assert r.status_code == 200, r.json()
    return [res["spans"] for res in r.json()["results"]]


def test_spacy_finds_org_gpe_person_with_exact_offsets(client: TestClient) -> None:
    text = "Apple opened an office in Paris, said Tim Cook."
    [found] = spans(client, [text])
    got = {(s["label"], s["start"], s["end"], s["text"]) for s in found}
    assert got == {("ORG", 0, 5, "Apple"), ("GPE", 26, 31, "Paris"), ("PERSON", 38, 46, "Tim Cook")}


def test_offsets_are_code_points_in_unicode_text(client: TestClient) -> None:
    texts = [
        "😀😀 Zoë met Angela Merkel in Berlin.",
        "Contact: José García, jose.garcia@example.org 🙂",
    ]
    for model in ("en-core-web-sm", "pii"):
        for text, found in zip(texts, spans(client, texts, model), strict=True):
            for s in found:
                assert text[s["start"] : s["end"]] == s["text"]
    pii = spans(client, texts, "pii")[1]
    emails = [s for s in pii if s["label"] == "EMAIL"]
    assert [e["text"] for e in emails] == ["jose.garcia@example.org"]
    assert all(0.0 <= s["score"] <= 1.0 for s in pii)


def test_many_texts_keep_their_order(client: TestClient) -> None:
    texts = [f"Ms. Smith moved to Chicago in {1990 + i}." for i in range(20)] + ["", "   "]
    found = spans(client, texts)
    assert len(found) == 22 and found[-2:] == [[], []]
    assert all(any(s["text"] == "Chicago" for s in f) for f in found[:20])


def test_limits_and_unknown_model(client: TestClient) -> None:
    for body, status in (
        ({"texts": []}, 422),
        ({"texts": ["x"] * 65}, 422),
        ({"texts": ["x" * 20_001]}, 422),
        ({"texts": "not a list"}, 422),
        ({"texts": [1, 2]}, 422),
        ({"texts": ["ok"], "model": "nope"}, 404),
        ({"texts": ["ok"], "model": "nanodet-g"}, 404),
        ({"texts": ["ok"], "extra": True}, 422),
    ):
        r = client.post("/v1/ner", json=body)
        assert r.status_code == status, (body, r.json())
        assert set(r.json()["error"]) == {"code", "message"}
