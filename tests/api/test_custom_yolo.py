"""A user-supplied YOLOv8/YOLO11-style ONNX works by adding a manifest entry, nothing else.

The ONNX here is built in the test: it ignores its input and emits a known `[B, 4+C, N]` tensor
(cx, cy, w, h in letterboxed 640x640 pixels, then class scores), so the expected boxes in the
original image are exact.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from app.inference.manifest import sha256_file
from app.main import create_app

onnx = pytest.importorskip("onnx")

LABELS = ["cat", "dog", "car"]
# Letterbox of a 1280x640 image into 640x640: scale 0.5, 160 px of padding above and below.
# Each column: cx, cy, w, h (network pixels), then one score per label.
CANDIDATES = np.array(
    [
        [100, 260, 100, 100, 0.0, 0.9, 0.0],  # dog at [100, 100, 300, 300] in the image
        [105, 265, 100, 100, 0.0, 0.6, 0.0],  # the same dog, weaker: NMS removes it
        [500, 360, 200, 200, 0.1, 0.0, 0.8],  # car at [800, 200, 1200, 600]
        [300, 300, 50, 50, 0.2, 0.1, 0.0],  # below the score threshold
    ],
    dtype=np.float32,
).T[None]  # [1, 7, 4]


def build_model(path: Path) -> None:
    h = onnx.helper
    const = onnx.numpy_helper.from_array(CANDIDATES, "candidates")
    tail = onnx.numpy_helper.from_array(np.array(CANDIDATES.shape[1:], np.int64), "tail")
    start = onnx.numpy_helper.from_array(np.array([0], np.int64), "start")
    end = onnx.numpy_helper.from_array(np.array([1], np.int64), "end")
    nodes = [
        h.make_node("Shape", ["images"], ["shape"]),
        h.make_node("Slice", ["shape", "start", "end"], ["batch"]),
        h.make_node("Concat", ["batch", "tail"], ["out_shape"], axis=0),
        h.make_node("Expand", ["candidates", "out_shape"], ["output0"]),
    ]
    graph = h.make_graph(
        nodes,
        "tiny-yolo",
        [h.make_tensor_value_info("images", onnx.TensorProto.FLOAT, ["batch", 3, 640, 640])],
        [h.make_tensor_value_info("output0", onnx.TensorProto.FLOAT, ["batch", 7, 4])],
        initializer=[const, tail, start, end],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_yolo_entry_in_the_manifest_serves_boxes_in_original_pixels(tmp_path: Path) -> None:
    (tmp_path / "tiny").mkdir()
    build_model(tmp_path / "tiny" / "tiny.onnx")
    (tmp_path / "tiny" / "labels.txt").write_text("\n".join(LABELS) + "\n")
    digest = sha256_file(tmp_path / "tiny" / "tiny.onnx")
    (tmp_path / "manifest.toml").write_text(
        f"""
[[model]]
name = "tiny-yolo"
task = "detect"
adapter = "yolo"
version = "test"
license = "test"
source = "built by the test"
labels_file = "tiny/labels.txt"
files = [ {{ role = "onnx", path = "tiny/tiny.onnx", sha256 = "{digest}" }} ]
serving = {{ max_batch_size = 8, workers = 2 }}

[model.input]
width = 640
height = 640
color = "RGB"
mean = [0, 0, 0]
std = [255, 255, 255]
resize = "letterbox"
"""
    )
    settings = Settings(
        model_dir=tmp_path,
        models=["tiny-yolo"],
        default_detector="tiny-yolo",
        default_sam="",
        default_ner="",
    )
    buf = io.BytesIO()
    Image.fromarray(np.full((640, 1280, 3), 90, np.uint8)).save(buf, "PNG")
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        r = client.post(
            "/v1/detect",
            files={"file": ("x.png", buf.getvalue(), "image/png")},
            data={"score_threshold": "0.5"},
        )
        assert r.status_code == 200, r.json()
        got = [(d["label"], d["score"], d["box"]) for d in r.json()["detections"]]
    assert got == [
        ("dog", 0.9, [100.0, 100.0, 300.0, 300.0]),
        ("car", 0.8, [800.0, 200.0, 1200.0, 600.0]),
    ]
