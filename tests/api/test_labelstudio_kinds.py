"""Label Studio /predict for keypoints (MoveNet), OCR (PP-OCR) and parts of speech (spaCy), and
the prediction `score` = 1 - the task's uncertainty, on the real models and real images served
by a scripted Label Studio (httpx.MockTransport)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.domain.labelstudio.projects import LsOrigins
from app.domain.urls import SafeFetcher
from app.main import create_app
from tests.conftest import png_bytes

HOST = "http://ls.test:8080"
TOKEN = "legacy-token"
SIGN = Path(__file__).parent.parent / "data" / "ocr" / "scenetext01.jpg"
FILES = {
    "/data/upload/1/astronaut.png": png_bytes("astronaut.png"),
    "/data/upload/1/sign.jpg": SIGN.read_bytes(),
}
POSE_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image"><Label value="Person"/></RectangleLabels>
  <KeyPointLabels name="kp" toName="image">
    <Label value="nose"/><Label value="left_wrist"/><Label value="right_wrist"/>
  </KeyPointLabels>
</View>"""
SMART_CONFIG = POSE_CONFIG.replace(
    '<KeyPointLabels name="kp" toName="image">',
    '<KeyPointLabels name="kp" toName="image" smart="true">',
)
OCR_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Labels name="label" toName="image"><Label value="Text"/><Label value="Handwriting"/></Labels>
  <Rectangle name="bbox" toName="image" strokeWidth="3"/>
  <Polygon name="poly" toName="image" strokeWidth="3"/>
  <TextArea name="transcription" toName="image" editable="true" perRegion="true"
            required="true" maxSubmissions="1" rows="5" placeholder="Recognized Text"/>
</View>"""
POS_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Labels name="pos" toName="text">
    <Label value="NOUN"/><Label value="VERB"/><Label value="Proper noun" predicted_values="PROPN"/>
  </Labels>
</View>"""


def fake_label_studio(request: httpx.Request) -> httpx.Response:
    if request.headers.get("authorization") != f"Token {TOKEN}":
        return httpx.Response(401)
    data = FILES.get(request.url.path)
    return httpx.Response(404) if data is None else httpx.Response(200, content=data)


@pytest.fixture(scope="module")
def tc() -> Iterator[TestClient]:
    settings = Settings(
        models=["nanodet-g", "movenet-multipose", "ppocr-v4", "en-core-web-sm"],
        default_sam="",
        default_embedder="",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        assert c.get("/readyz").status_code == 200, c.get("/readyz").json()
        runtime = c.app.state.runtime  # type: ignore[attr-defined]
        runtime.ls_fetcher.fetcher = SafeFetcher(
            runtime.ls_fetcher.fetcher.policy,
            resolver=lambda host, port: ["10.0.0.7"],
            transport=httpx.MockTransport(fake_label_studio),
        )
        runtime.ls_projects.origins = LsOrigins(allowed=[HOST])
        yield c


def predict(tc: TestClient, project: str, config: str, data: dict[str, str]) -> dict[str, Any]:
    body = {"project": project, "schema": config, "hostname": HOST, "access_token": TOKEN}
    version = tc.post("/setup", json=body).json()["model_version"]
    r = tc.post(
        "/predict",
        json={"tasks": [{"id": 1, "data": data}], "project": project, "label_config": config},
    )
    assert r.status_code == 200, r.text
    [pred] = r.json()["results"]
    assert pred["model_version"] == version
    return dict(pred)


def test_keypoints_are_children_of_their_person_rectangle(tc: TestClient) -> None:
    pred = predict(tc, "21.1", POSE_CONFIG, {"image": "/data/upload/1/astronaut.png"})
    poses = tc.post(
        "/v1/keypoints", files={"file": ("a.png", FILES["/data/upload/1/astronaut.png"])}
    )
    instances = poses.json()["instances"]
    rects = [r for r in pred["result"] if r["type"] == "rectanglelabels"]
    points = [r for r in pred["result"] if r["type"] == "keypointlabels"]
    # MoveNet's persons replace the detector's person boxes: one rectangle per instance.
    assert len(rects) == len(instances) >= 1
    assert all(r["value"]["rectanglelabels"] == ["Person"] for r in rects)
    assert {r["score"] for r in rects} == {i["score"] for i in instances}
    by_id = {r["id"]: r["value"] for r in rects}
    names = {p["value"]["keypointlabels"][0] for p in points}
    assert "nose" in names and names <= {"nose", "left_wrist", "right_wrist"}
    for p in points:
        box, v = by_id[p["parentID"]], p["value"]
        assert box["x"] <= v["x"] <= box["x"] + box["width"]
        assert box["y"] <= v["y"] <= box["y"] + box["height"]
    assert pred["score"] == round(max(i["score"] for i in instances), 4)


def test_smart_keypoints_stay_interactive(tc: TestClient) -> None:
    pred = predict(tc, "22.1", SMART_CONFIG, {"image": "/data/upload/1/astronaut.png"})
    assert not [r for r in pred["result"] if r["type"] == "keypointlabels"]
    found = tc.post("/v1/detect", files={"file": ("a.png", FILES["/data/upload/1/astronaut.png"])})
    people = [
        d for d in found.json()["detections"] if d["label"] == "person" and d["score"] >= 0.35
    ]
    rects = [r for r in pred["result"] if r["type"] == "rectanglelabels"]
    assert len(rects) == len(people) >= 1  # the detector's boxes, as before
    assert pred["score"] == round(max(d["score"] for d in people), 4)


def test_ocr_config_gets_lines_with_transcriptions(tc: TestClient) -> None:
    pred = predict(tc, "23.1", OCR_CONFIG, {"image": "/data/upload/1/sign.jpg"})
    lines = tc.post("/v1/ocr", files={"file": ("s.jpg", SIGN.read_bytes())}).json()["lines"]
    assert lines
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in pred["result"]:
        by_type.setdefault(r["type"], []).append(r)
    assert set(by_type) == {"polygon", "textarea", "labels"}
    assert [r["value"]["text"][0] for r in by_type["textarea"]] == [ln["text"] for ln in lines]
    assert [r["id"] for r in by_type["polygon"]] == [r["id"] for r in by_type["textarea"]]
    assert all(r["value"]["labels"] == ["Text"] for r in by_type["labels"])
    assert all(
        r["from_name"] == "poly" and len(r["value"]["points"]) == 4 for r in by_type["polygon"]
    )
    assert pred["score"] == round(max(ln["score"] for ln in lines), 4)


def test_pos_labels_get_tokens_not_entities(tc: TestClient) -> None:
    text = "Angela Merkel visited the old factory in Berlin."
    pred = predict(tc, "24.1", POS_CONFIG, {"text": text})
    tokens = tc.post("/v1/tokens", json={"texts": [text]}).json()["results"][0]["tokens"]
    names = {"NOUN": "NOUN", "VERB": "VERB", "PROPN": "Proper noun"}
    expected = [(t["start"], t["end"], names[t["pos"]]) for t in tokens if t["pos"] in names]
    got = [
        (r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in pred["result"]
    ]
    assert ("Proper noun" in {g[2] for g in got}) and ("VERB" in {g[2] for g in got})
    assert got == expected
    assert all(
        text[s:e] == r["value"]["text"] for (s, e, _), r in zip(got, pred["result"], strict=True)
    )
    assert pred["score"] is None  # spaCy has no probabilities: no uncertainty to rank by
