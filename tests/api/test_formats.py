"""`format=` on detect, segment and NER: ready-to-import payloads from the real models."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from fastapi.testclient import TestClient
from pycocotools.coco import COCO

from app.domain.formats.ls_brush import decode_brush
from app.domain.formats.text import from_conll, from_spacy_jsonl


def upload(image: bytes, **fields: str) -> dict[str, Any]:
    """TestClient.post's keyword arguments for a multipart upload of `image` with `fields`."""
    return {"files": {"file": ("astronaut.png", image, "image/png")}, "data": fields}


def test_formats_are_listed(client: TestClient) -> None:
    body = client.get("/v1/formats").json()
    assert {"coco", "coco-results", "yolo", "voc", "labelstudio"} <= set(body["image"])
    assert {"labelstudio", "spacy-jsonl", "conll"} <= set(body["text"])


def test_detect_in_every_image_format(client: TestClient, astronaut_png: bytes) -> None:
    def detect(fmt: str) -> str:
        r = client.post("/v1/detect", **upload(astronaut_png, format=fmt, file_name="a.png"))
        assert r.status_code == 200, r.text
        return r.text

    coco = COCO()
    coco.dataset = json.loads(detect("coco"))
    coco.createIndex()
    person = coco.getCatIds(catNms=["person"])
    assert coco.getAnnIds(catIds=person) and coco.imgs[1]["file_name"] == "a.png"
    results = json.loads(detect("coco-results"))
    assert results and all("score" in x for x in results)
    rows = [line.split() for line in detect("yolo").splitlines()]
    assert rows[0][0] == "0" and all(0 <= float(v) <= 1 for v in rows[0][1:5])  # 0 = person
    voc = ET.fromstring(detect("voc"))
    assert voc.findtext("filename") == "a.png" and voc.findtext("object/name") == "person"
    task = json.loads(detect("labelstudio"))
    [pred] = task["predictions"]
    assert task["data"]["image"] == "a.png"
    assert pred["result"][0]["value"]["rectanglelabels"] == ["person"]


def test_segment_as_label_studio_brush_and_coco(client: TestClient, astronaut_png: bytes) -> None:
    fields = {"points": '[{"x": 230, "y": 110}]', "label": "astronaut", "format": "labelstudio"}
    r = client.post("/v1/sam/segment", **upload(astronaut_png, **fields))
    assert r.status_code == 200, r.text
    results = r.json()["predictions"][0]["result"]
    assert [x["type"] for x in results] == ["rectanglelabels", "brushlabels"]
    res = results[1]
    assert res["value"]["brushlabels"] == ["astronaut"]
    assert decode_brush(res["value"]["rle"], 512, 512).mean() > 0.3
    r = client.post("/v1/sam/segment", **upload(astronaut_png, **{**fields, "format": "coco"}))
    [ann] = r.json()["annotations"]
    assert ann["area"] > 0.3 * 512 * 512 and ann["segmentation"]["size"] == [512, 512]


def test_ner_in_every_text_format(client: TestClient) -> None:
    texts = ["Apple opened an office in Paris, said Tim Cook."]

    def ner(fmt: str) -> str:
        r = client.post("/v1/ner", json={"texts": texts, "format": fmt})
        assert r.status_code == 200, r.text
        return r.text

    [record] = from_spacy_jsonl(ner("spacy-jsonl"))
    assert record.text == texts[0] and {s.label for s in record.spans} == {"ORG", "GPE", "PERSON"}
    [conll] = from_conll(ner("conll"))
    assert {s.label for s in conll.spans} == {"ORG", "GPE", "PERSON"}
    [task] = json.loads(ner("labelstudio"))
    labels = {r["value"]["text"]: r["value"]["labels"] for r in task["predictions"][0]["result"]}
    assert labels == {"Apple": ["ORG"], "Paris": ["GPE"], "Tim Cook": ["PERSON"]}


def test_unknown_format_is_422_before_any_model_runs(
    client: TestClient, astronaut_png: bytes
) -> None:
    r = client.post("/v1/detect", **upload(astronaut_png, format="pascal"))
    assert r.status_code == 422 and "coco" in r.json()["error"]["message"]
    r = client.post("/v1/ner", json={"texts": ["x"], "format": "coco"})
    assert r.status_code == 422
