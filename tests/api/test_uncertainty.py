"""`uncertainty` on every suggestion route and /v1/rank, on the real default models."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image, ImageFilter

from tests.conftest import jpeg_bytes, png_bytes

INTENTS = ["refund_request", "bug_report", "greeting"]


def _detect(client: TestClient, img: Image.Image) -> dict[str, Any]:
    r = client.post("/v1/detect", files={"file": ("a.jpg", jpeg_bytes(np.asarray(img)))})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_detect_blurry_and_empty_are_more_uncertain(client: TestClient) -> None:
    im = Image.open(io.BytesIO(png_bytes("astronaut.png"))).convert("RGB")
    clear = _detect(client, im)
    blurry = _detect(client, im.filter(ImageFilter.GaussianBlur(8)))
    corner = _detect(client, im.crop((0, 0, 128, 128)).filter(ImageFilter.GaussianBlur(3)))
    assert clear["detections"] and corner["detections"] == []
    best = max(d["score"] for d in clear["detections"])
    assert clear["uncertainty"] == round(1 - best, 4)
    for d in clear["detections"]:
        assert d["uncertainty"] == round(1 - d["score"], 4)
    assert clear["uncertainty"] < blurry["uncertainty"] < corner["uncertainty"] == 1.0


def test_classify_uncertainty_strategies_buckets_and_stream_flag(client: TestClient) -> None:
    texts = ["I want a refund for my order", "ok"]
    seen = {}
    for strategy in ("least_confidence", "margin", "entropy"):
        body = {"texts": texts, "labels": INTENTS, "uncertainty": strategy}
        r = client.post("/v1/classify", json={**body, "needs_human_above": 0.03, "top_k": 3})
        assert r.status_code == 200, r.text
        res = r.json()["results"]
        clear, vague = res[0], res[1]
        assert 0.0 <= clear["uncertainty"] < vague["uncertainty"] <= 1.0, strategy
        assert clear["needs_human"] is False and vague["needs_human"] is True
        assert clear["difficulty"] == "easy"
        p = np.array([s["score"] for s in vague["scores"]])
        seen[strategy] = vague["uncertainty"]
        if strategy == "margin":  # the 3 labels' scores are all returned (top_k=3)
            assert abs(vague["uncertainty"] - (1 - (p[0] - p[1]))) < 2e-3
    assert len(set(seen.values())) == 3
    r = client.post("/v1/classify", json={"texts": texts, "labels": INTENTS})
    assert r.json()["results"][0]["needs_human"] is None  # no threshold: not in stream mode
    bad = client.post("/v1/classify", json={"texts": texts, "labels": INTENTS, "uncertainty": "x"})
    assert bad.status_code == 422 and set(bad.json()["error"]) == {"code", "message"}


def test_ner_uncertainty(client: TestClient) -> None:
    text = "Mail jane.doe@example.com or call John Smith"
    r = client.post("/v1/ner", json={"model": "pii", "texts": [text]}).json()["results"][0]
    assert r["spans"]
    for s in r["spans"]:
        assert s["uncertainty"] == round(1 - s["score"], 4)
    assert r["uncertainty"] == max(s["uncertainty"] for s in r["spans"])
    spacy = client.post("/v1/ner", json={"texts": ["Apple opened an office in Paris"]}).json()
    res = spacy["results"][0]
    assert res["spans"] and res["uncertainty"] is None
    assert all(s["uncertainty"] is None for s in res["spans"])  # spaCy gives no probabilities


def test_sam_uncertainty(client: TestClient) -> None:
    r = client.post(
        "/v1/sam/segment",
        files={"file": ("a.png", png_bytes("astronaut.png"))},
        data={"points": '[{"x": 230, "y": 110}]'},
    )
    assert r.status_code == 200, r.text
    m = r.json()["masks"][0]
    assert m["uncertainty"] == round(1 - m["predicted_iou"], 4)


POOL = [
    "I want a refund for my order",
    "hmm, maybe",
    "Hmm, maybe.",
    "hmm maybe...",
    "The app crashes when I open settings",
    "ok",
    "Good morning to you all",
    "thanks",
]


def test_rank_is_deterministic_and_diversity_skips_near_duplicates(client: TestClient) -> None:
    def picks(**opts: object) -> list[int]:
        body = {"texts": POOL, "labels": INTENTS, "k": 3, **opts}
        r = client.post("/v1/rank", json=body)
        assert r.status_code == 200, r.text
        out = r.json()["picks"]
        us = [p["uncertainty"] for p in out]
        if opts.get("diversity", "none") == "none" and opts.get("strategy") != "random":
            assert us == sorted(us, reverse=True)
        return [p["index"] for p in out]

    dupes = {1, 2, 3}  # "hmm, maybe" three times: near-duplicates, and the most uncertain
    plain = picks(strategy="least_confidence")
    assert len(dupes & set(plain)) >= 2
    div = picks(strategy="least_confidence", diversity="kcenter")
    assert div == picks(strategy="least_confidence", diversity="kcenter")
    assert len(dupes & set(div)) <= 1
    assert len(dupes & set(picks(strategy="least_confidence", diversity="cluster"))) <= 1
    assert picks(strategy="random", seed=5) == picks(strategy="random", seed=5)
    assert sorted(picks(strategy="random", seed=1, k=8)) == list(range(8))
    assert plain[0] not in {0, 4}  # a clear request is not the first to label
    bad = client.post("/v1/rank", json={"texts": POOL, "k": 3})
    assert bad.status_code == 422


def test_few_shot_uncertainty_and_rank_by_project(client: TestClient) -> None:
    examples = [
        {"text": "Please give my money back", "label": "refund"},
        {"text": "I want a refund for this order", "label": "refund"},
        {"text": "Login fails with error 500", "label": "bug"},
        {"text": "The app crashes on start", "label": "bug"},
    ]
    r = client.post("/v1/projects/rank-test/examples", json={"examples": examples})
    assert r.status_code in (200, 201, 202), r.text
    assert client.post("/v1/projects/rank-test/train?wait=true").status_code == 200
    texts = ["Refund my money please", "It crashes and also I want my money back"]
    body = {"texts": texts, "project": "rank-test", "top_k": 2, "uncertainty": "margin"}
    out = client.post("/v1/classify", json=body).json()
    assert out["mode"] == "few-shot"
    for res in out["results"]:
        p = [s["score"] for s in res["scores"]]
        assert abs(res["uncertainty"] - (1 - (p[0] - p[1]))) < 2e-3
    assert out["results"][0]["uncertainty"] < out["results"][1]["uncertainty"]
    ranked = client.post("/v1/rank", json={"texts": texts, "project": "rank-test", "k": 1})
    assert ranked.json()["mode"] == "few-shot" and ranked.json()["picks"][0]["index"] == 1
    client.delete("/v1/projects/rank-test")
