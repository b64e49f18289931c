"""POST /v1/keypoints on the converted MoveNet MultiPose and real photos: the ONNX file against
TF.js's own output, people with keypoints inside their boxes, EXIF, COCO keypoints (loaded and
scored by pycocotools), YOLO pose, Label Studio, limits and bad input."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from app.main import create_app
from tests.conftest import SKIMAGE_DATA

DATA = Path(__file__).parent.parent / "data" / "keypoints"
MODEL = Path(__file__).parent.parent.parent / "models" / "movenet-multipose"
ASTRONAUT = (SKIMAGE_DATA / "astronaut.png").read_bytes()
CAMERAMAN = (SKIMAGE_DATA / "camera.png").read_bytes()


@pytest.fixture(scope="module")
def tc() -> Iterator[TestClient]:
    settings = Settings(
        models=["movenet-multipose"], default_detector="", default_sam="", default_ner=""
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        assert c.get("/readyz").status_code == 200, c.get("/readyz").json()
        yield c


def post(tc: TestClient, data: bytes, **fields: str) -> Any:
    r = tc.post("/v1/keypoints", files={"file": ("x.png", data)}, data=fields)
    assert r.status_code == 200, r.text
    return r.json() if r.headers["content-type"].startswith("application/json") else r.text


def test_onnx_matches_tfjs_on_the_same_input() -> None:
    """The committed ONNX file against TF.js 4.22's own executor (output saved by
    scripts/convert_movenet.sh's check) on the astronaut scaled to 256 x 256."""
    img = (
        Image.open(io.BytesIO(ASTRONAUT))
        .convert("RGB")
        .resize((256, 256), Image.Resampling.BILINEAR)
    )
    x = np.asarray(img, np.int32)[None]
    session = ort.InferenceSession(str(MODEL / "movenet-multipose.onnx"))
    y = session.run(None, {session.get_inputs()[0].name: x})[0]
    ref = json.loads((DATA / "astronaut_256x256_tfjs.json").read_text())
    expected = np.array(ref["data"], np.float32).reshape(ref["shape"])
    assert y.shape == (1, 6, 56)
    assert float(np.abs(y - expected).max()) < 1e-4
    assert expected[0, 0, 55] > 0.4  # the astronaut is found (not a comparison of zeros)


def test_a_person_with_keypoints_inside_the_box(tc: TestClient) -> None:
    body = post(tc, ASTRONAUT)
    assert (body["width"], body["height"]) == (512, 512)
    [person] = body["instances"]
    assert person["label"] == "person" and person["score"] > 0.4
    x1, y1, x2, y2 = person["box"]
    assert [x1, y1, x2, y2] == pytest.approx([17.6, 11.1, 361.2, 509.1], abs=3)
    names = [k["name"] for k in person["keypoints"]]
    assert names == body["keypoint_names"] and len(names) == 17
    seen = [k for k in person["keypoints"] if k["score"] >= 0.3]
    assert {"nose", "left_eye", "right_eye", "left_shoulder", "right_shoulder"} <= {
        k["name"] for k in seen
    }
    assert all(x1 <= k["x"] <= x2 and y1 <= k["y"] <= y2 for k in seen)
    kp = {k["name"]: k for k in person["keypoints"]}
    # The face: nose between the eyes, below them; the person faces the camera, so their
    # left eye is on the image's right.
    assert kp["right_eye"]["x"] < kp["nose"]["x"] < kp["left_eye"]["x"]
    assert kp["nose"]["y"] > max(kp["left_eye"]["y"], kp["right_eye"]["y"])
    assert kp["nose"]["x"] == pytest.approx(223.7, abs=4) and kp["nose"]["y"] == pytest.approx(
        122.3, abs=4
    )
    assert [16, 14] in body["skeleton"] and len(body["skeleton"]) == 19


def test_no_person_in_a_photo_of_coffee(tc: TestClient) -> None:
    assert post(tc, (SKIMAGE_DATA / "coffee.png").read_bytes())["instances"] == []


def test_exif_orientation_is_applied(tc: TestClient) -> None:
    upright = Image.open(io.BytesIO(ASTRONAUT)).convert("RGB")
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=95, exif=exif)
    body = post(tc, buf.getvalue())
    assert (body["width"], body["height"]) == (512, 512)
    nose = next(k for k in body["instances"][0]["keypoints"] if k["name"] == "nose")
    assert nose["x"] == pytest.approx(223.7, abs=6) and nose["y"] == pytest.approx(122.3, abs=6)


def test_coco_keypoints_load_and_score_in_pycocotools(tc: TestClient, tmp_path: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    doc = post(tc, CAMERAMAN, format="coco", file_name="camera.png")
    [cat] = doc["categories"]
    assert cat["name"] == "person" and len(cat["keypoints"]) == 17 and len(cat["skeleton"]) == 19
    [ann] = doc["annotations"]
    assert len(ann["keypoints"]) == 51 and ann["num_keypoints"] == sum(
        1 for v in ann["keypoints"][2::3] if v == 2
    )
    assert ann["num_keypoints"] >= 5
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(doc))
    gt = COCO(str(gt_path))
    results = post(tc, CAMERAMAN, format="coco-results")

    def ap(res: list[dict[str, Any]]) -> float:
        ev = COCOeval(gt, gt.loadRes(res), iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        return float(ev.stats[0])

    assert ap(results) == pytest.approx(1.0)
    shifted = [
        {**r, "keypoints": [v + 40 if i % 3 < 2 else v for i, v in enumerate(r["keypoints"])]}
        for r in results
    ]
    assert ap(shifted) < 0.5


def test_yolo_pose_rows(tc: TestClient) -> None:
    text = post(tc, ASTRONAUT, format="yolo")
    [row] = text.splitlines()
    vals = row.split()
    assert vals[0] == "0" and len(vals) == 5 + 17 * 3
    cx, _, w, h = map(float, vals[1:5])
    assert cx == pytest.approx((17.6 + 361.2) / 2 / 512, abs=0.01) and 0 < w <= 1 and 0 < h <= 1
    assert vals[7] == "2"  # the nose is labelled visible


def test_labelstudio_points_belong_to_their_box(tc: TestClient) -> None:
    task = post(tc, ASTRONAUT, format="labelstudio", file_name="/data/a.png")
    assert task["data"] == {"image": "/data/a.png"}
    results = task["predictions"][0]["result"]
    rect = results[0]
    assert rect["type"] == "rectanglelabels" and rect["value"]["rectanglelabels"] == ["person"]
    points = results[1:]
    assert points and all(
        p["type"] == "keypointlabels" and p["parentID"] == rect["id"] for p in points
    )
    v = rect["value"]
    for p in points:
        assert v["x"] <= p["value"]["x"] <= v["x"] + v["width"]
        assert v["y"] <= p["value"]["y"] <= v["y"] + v["height"]
    assert "nose" in {p["value"]["keypointlabels"][0] for p in points}


@pytest.mark.parametrize(
    ("files", "data", "status"),
    [
        ({"file": ("x.jpg", b"not an image")}, {}, 415),
        ({"file": ("x.png", ASTRONAUT)}, {"model": "nope"}, 404),
        ({"file": ("x.png", ASTRONAUT)}, {"min_score": "-1"}, 422),
        ({"file": ("x.png", ASTRONAUT)}, {"max_instances": "0"}, 422),
        ({"file": ("x.png", ASTRONAUT)}, {"format": "xml"}, 422),
        ({}, {}, 400),
    ],
)
def test_bad_input_is_a_json_4xx(
    tc: TestClient, files: dict[str, tuple[str, bytes]], data: dict[str, str], status: int
) -> None:
    r = tc.post("/v1/keypoints", files=files or None, data=data)
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]


def test_tiny_image(tc: TestClient) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (1, 3), (0, 0, 0)).save(buf, "PNG")
    body = post(tc, buf.getvalue())
    assert (body["width"], body["height"]) == (1, 3) and body["instances"] == []


def test_models_batcher_and_metrics(tc: TestClient) -> None:
    [m] = tc.get("/v1/models").json()["models"]
    assert m["name"] == "movenet-multipose" and m["task"] == "keypoints"
    assert m["status"] == "ready" and m["labels"] == ["person"]
    assert len(m["keypoints"]) == 17 and [16, 14] in m["skeleton"]
    assert [b["name"] for b in m["batching"]] == ["movenet-multipose"]
    post(tc, ASTRONAUT, priority="bulk")
    assert 'model="movenet-multipose"' in tc.get("/metrics").text
