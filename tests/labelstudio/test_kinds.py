"""Keypoints, OCR lines and parts of speech in a running Label Studio: "Retrieve predictions"
stores MoveNet's persons with their keypoints linked by `parentID`, PP-OCR's lines with their
transcriptions, and one POS span per token, the same as Prelabel's own routes give."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.test_labelstudio_kinds import OCR_CONFIG, POS_CONFIG, POSE_CONFIG, SIGN
from tests.labelstudio.stack import Stack


def stored(
    stack: Stack,
    title: str,
    config: str,
    upload: tuple[str, bytes, str] | None = None,
    data: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The one prediction's results Label Studio stored for the project's one task."""
    ls = stack.ls
    pid = ls.project(title, config)
    if upload is not None:
        ls.upload(pid, *upload)
    else:
        assert data is not None
        ls.import_tasks(pid, [data])
    backend = ls.connect(pid, stack.prelabel)
    assert backend["state"] == "CO", backend
    [task] = ls.tasks(pid)
    ls.retrieve_predictions(pid, [task["id"]])
    [prediction] = ls.predictions(task["id"])
    results: list[dict[str, Any]] = prediction["result"]
    return results


def test_persons_and_their_keypoints(stack: Stack) -> None:
    image = stack.image("astronaut.png")
    results = stored(stack, "pose", POSE_CONFIG, upload=("astronaut.png", image, "image/png"))
    r = httpx.post(f"{stack.prelabel}/v1/keypoints", files={"file": ("a.png", image)}, timeout=120)
    assert r.status_code == 200, r.text
    instances = r.json()["instances"]
    rects = {x["id"]: x for x in results if x["type"] == "rectanglelabels"}
    points = [x for x in results if x["type"] == "keypointlabels"]
    assert len(rects) == len(instances) >= 1
    assert points and all(p["parentID"] in rects and p["from_name"] == "kp" for p in points)
    expected = {
        (k["name"], round(k["score"], 3))
        for i in instances
        for k in i["keypoints"]
        if k["score"] >= 0.3 and k["name"] in ("nose", "left_wrist", "right_wrist")
    }
    assert {(p["value"]["keypointlabels"][0], round(p["score"], 3)) for p in points} == expected


def test_text_lines_with_transcriptions(stack: Stack) -> None:
    image = SIGN.read_bytes()
    results = stored(stack, "ocr", OCR_CONFIG, upload=("sign.jpg", image, "image/jpeg"))
    r = httpx.post(f"{stack.prelabel}/v1/ocr", files={"file": ("s.jpg", image)}, timeout=120)
    assert r.status_code == 200, r.text
    lines = [ln["text"] for ln in r.json()["lines"]]
    assert lines
    texts = [x["value"]["text"][0] for x in results if x["type"] == "textarea"]
    assert texts == lines
    polygons = [x["id"] for x in results if x["type"] == "polygon"]
    assert polygons == [x["id"] for x in results if x["type"] == "textarea"]


def test_parts_of_speech(stack: Stack) -> None:
    text = "Angela Merkel visited the old factory in Berlin."
    results = stored(stack, "pos", POS_CONFIG, data={"text": text})
    r = httpx.post(f"{stack.prelabel}/v1/tokens", json={"texts": [text]}, timeout=60)
    assert r.status_code == 200, r.text
    names = {"NOUN": "NOUN", "VERB": "VERB", "PROPN": "Proper noun"}
    expected = [
        (t["start"], t["end"], names[t["pos"]])
        for t in r.json()["results"][0]["tokens"]
        if t["pos"] in names
    ]
    got = [(x["value"]["start"], x["value"]["end"], x["value"]["labels"][0]) for x in results]
    assert expected and got == expected
