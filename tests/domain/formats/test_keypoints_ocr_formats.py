"""Keypoint (COCO, YOLO pose, Label Studio) and OCR (Label Studio, JSONL) writers on hand-made
instances with known geometry."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from app.domain.formats.keypoints import (
    keypoint_results,
    to_coco_keypoint_results,
    to_coco_keypoints,
    to_yolo_pose,
)
from app.domain.formats.ocr import ocr_jsonl, ocr_results, ocr_task


@dataclass(frozen=True)
class Kp:
    name: str
    x: float
    y: float
    score: float


@dataclass(frozen=True)
class Inst:
    label: str
    box: tuple[float, float, float, float]
    score: float
    keypoints: tuple[Kp, ...]


@dataclass(frozen=True)
class Line:
    polygon: tuple[tuple[float, float], ...]
    text: str
    score: float


PERSON = Inst("person", (10, 20, 110, 220), 0.8, (Kp("a", 50, 60, 0.9), Kp("b", 70, 80, 0.1)))


def test_coco_keypoints_triples_and_visibility() -> None:
    doc = to_coco_keypoints([("p.jpg", 200, 400, [PERSON])], "person", ["a", "b"], [(1, 2)], 0.3)
    [ann] = doc["annotations"]
    assert ann["keypoints"] == [50, 60, 2, 0, 0, 0] and ann["num_keypoints"] == 1
    assert ann["bbox"] == [10, 20, 100, 200] and ann["area"] == 20000
    assert doc["categories"][0]["skeleton"] == [[1, 2]]
    assert doc["images"] == [{"id": 1, "file_name": "p.jpg", "width": 200, "height": 400}]
    [res] = to_coco_keypoint_results([[PERSON]])
    assert res["keypoints"] == [50, 60, 1, 70, 80, 1] and res["image_id"] == 1


def test_yolo_pose_row() -> None:
    row = to_yolo_pose([PERSON], 200, 400, 0.3)
    assert row == ("0 0.300000 0.300000 0.500000 0.500000 0.250000 0.150000 2 0 0 0\n")
    assert to_yolo_pose([], 10, 10) == ""


def test_labelstudio_keypoints_children_of_their_rectangle() -> None:
    rect, point = keypoint_results([PERSON], 200, 400, 0.3)
    assert rect["value"] == {
        "x": 5.0, "y": 5.0, "width": 50.0, "height": 50.0, "rotation": 0,
        "rectanglelabels": ["person"],
    }  # fmt: skip
    assert point["parentID"] == rect["id"] and point["type"] == "keypointlabels"
    assert point["value"]["x"] == 25.0 and point["value"]["y"] == 15.0
    assert point["value"]["keypointlabels"] == ["a"]


SLANTED = Line(((10.0, 10.0), (110.0, 110.0), (100.0, 120.0), (0.0, 20.0)), "hi", 0.9)


def test_ocr_polygon_textarea_label_share_a_region() -> None:
    poly, text, label = ocr_results([SLANTED], 200, 200, label="Text")
    assert poly["id"] == text["id"] == label["id"]
    assert poly["value"]["points"][1] == pytest.approx([55.0, 55.0]) and poly["value"]["closed"]
    assert text["value"]["text"] == ["hi"] and label["value"]["labels"] == ["Text"]


def test_ocr_rotated_rectangle() -> None:
    rect, _ = ocr_results([SLANTED], 200, 200, shape="rectangle", names=("bbox", "t", "l", "i"))
    v = rect["value"]
    assert rect["type"] == "rectangle" and v["rotation"] == pytest.approx(45.0)
    assert (v["x"], v["y"]) == (5.0, 5.0)
    assert v["width"] == pytest.approx(100 * 2**0.5 / 2) and v["height"] == pytest.approx(
        200**0.5 / 2
    )


def test_ocr_task_and_jsonl() -> None:
    task = ocr_task("/d/s.jpg", 200, 200, [SLANTED], "m-1")
    assert task["data"] == {"image": "/d/s.jpg"} and task["predictions"][0]["score"] == 0.9
    assert ocr_task("x", 1, 1, [], "m")["predictions"][0]["score"] is None
    line = ocr_jsonl("s.jpg", 200, 200, [SLANTED])
    assert line.endswith("\n") and json.loads(line)["lines"][0]["polygon"][2] == [100.0, 120.0]
