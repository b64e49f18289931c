"""Contract tests against the real Label Studio SDK (label-studio-sdk 2.1.2).

The SDK pins opencv-python-headless < 4.13 and Prelabel uses OpenCV 5, so it usually lives in
a separate virtual environment. The checks run in a subprocess of a Python that can import
`label_studio_sdk`: this interpreter when it can, else the one named by the environment
variable PRELABEL_LS_SDK_PYTHON; the test is skipped when neither is available.

What the SDK is asked (our outputs go in, its answers come back as JSON):
- brush: `converter.brush.decode_rle` of our RLE is exactly the mask (255 in all four
  channels), and `mask2rle` of the mask equals our RLE byte for byte and decodes with ours,
  for real SAM masks and random masks of odd sizes;
- rectangles: `converter.utils.convert_annotation_to_yolo_obb(..., normalize=False)` turns our
  percent boxes back into the pixel boxes;
- predictions: `LabelInterface(config).validate_prediction(p, return_errors=True)` finds no
  error in our predictions, and does find the errors planted in two negative controls.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.domain.formats.labelstudio import (
    brush_results,
    polygon_results,
    prediction,
    rectangle_results,
    text_label_results,
)
from app.domain.formats.ls_brush import decode_brush, encode_brush
from app.domain.labelstudio.config import LabelMap, parse_label_config
from tests.domain.formats.test_labelstudio import CONFIG, real_images, real_texts

SDK_ENV = "PRELABEL_LS_SDK_PYTHON"
SDK_VERSION = "2.1.2"

CHECK = r"""
import json, sys
from importlib.metadata import version
from pathlib import Path
import numpy as np
from label_studio_sdk.converter import brush
from label_studio_sdk.converter.utils import convert_annotation_to_yolo_obb
from label_studio_sdk.label_interface import LabelInterface

work = Path(sys.argv[1])
payload = json.loads((work / "payload.json").read_text())
masks = np.load(work / "masks.npz")
out = {"version": version("label-studio-sdk"), "decoded_exact": [], "sdk_rle": [],
       "corners": [], "errors": []}
for i, rle in enumerate(payload["rles"]):
    mask = masks[f"m{i}"]
    rgba = brush.decode_rle(rle).reshape(mask.shape[0], mask.shape[1], 4)
    out["decoded_exact"].append(bool((rgba == (mask[..., None] * 255)).all()))
    out["sdk_rle"].append([int(v) for v in brush.mask2rle(mask.astype(np.uint8) * 255)])
for r in payload["rectangles"]:
    label = {**r["value"], "original_width": r["original_width"],
             "original_height": r["original_height"]}
    out["corners"].append(convert_annotation_to_yolo_obb(label, normalize=False))
li = LabelInterface(payload["config"])
for p in payload["predictions"]:
    out["errors"].append(li.validate_prediction(p, return_errors=True))
print(json.dumps(out))
"""


def sdk_python() -> str | None:
    if importlib.util.find_spec("label_studio_sdk") is not None:
        return sys.executable
    return os.environ.get(SDK_ENV) or None


@pytest.fixture(scope="module")
def python() -> str:
    exe = sdk_python()
    if exe is None:
        pytest.skip(
            f"label_studio_sdk is not importable here and {SDK_ENV} is not set "
            f"(a Python with label-studio-sdk=={SDK_VERSION})"
        )
    if not Path(exe).exists():
        pytest.fail(f"{SDK_ENV}={exe} does not exist")
    return exe


def run_sdk(
    python: str, work: Path, payload: dict[str, Any], masks: list[np.ndarray]
) -> dict[str, Any]:
    (work / "payload.json").write_text(json.dumps(payload))
    # Any: savez's stubs type **kwds against its own `allow_pickle: bool` too.
    arrays: dict[str, Any] = {f"m{i}": m for i, m in enumerate(masks)}
    np.savez(work / "masks.npz", **arrays)
    proc = subprocess.run(
        [python, "-I", "-c", CHECK, str(work)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    answer: dict[str, Any] = json.loads(proc.stdout)
    assert answer["version"] == SDK_VERSION
    return answer


def test_against_the_sdk(python: str, tmp_path: Path) -> None:
    cfg = parse_label_config(CONFIG)
    images = real_images()
    rng = np.random.default_rng(7)
    masks = [o.mask for im in images for o in im.objects if o.mask is not None]
    masks += [
        rng.random(s) < d
        for s, d in [
            ((1, 1), 1.0),
            ((7, 5), 0.4),
            ((33, 17), 0.5),
            ((101, 3), 0.02),
            ((181, 97), 0.97),
        ]
    ]
    assert len(masks) >= 8

    preds, rectangles = [], []
    for im in images:
        rects = rectangle_results(im, "box", "image", LabelMap.for_control(cfg.control("box")))
        rectangles += [
            (r, o.box)
            for r, o in zip(rectangle_results(im, "box", "image"), im.objects, strict=True)
        ]
        result = (
            rects
            + brush_results(im, "brush", "image", LabelMap.for_control(cfg.control("brush")))
            + polygon_results(im, "poly", "image", LabelMap.for_control(cfg.control("poly")))
        )
        assert {r["type"] for r in result} == {"rectanglelabels", "brushlabels", "polygonlabels"}
        preds.append(prediction(result, None, "prelabel-test"))
    ner = LabelMap.for_control(cfg.control("ner"))
    for rec in real_texts():
        preds.append(prediction(text_label_results(rec, "ner", "text", ner), None, "v"))
    assert all(p["result"] for p in preds)
    # Negative controls: a label the config lacks, and a box outside the image.
    unmapped = rectangle_results(images[1], "box", "image")
    assert any(r["value"]["rectanglelabels"] == ["cell phone"] for r in unmapped)
    outside = json.loads(json.dumps(preds[0]["result"][0]))
    outside["value"]["x"] = 150.0
    controls = [prediction(unmapped, None, "v"), prediction([outside], None, "v")]

    answer = run_sdk(
        python,
        tmp_path,
        {
            "rles": [encode_brush(m) for m in masks],
            "rectangles": [r for r, _ in rectangles],
            "config": CONFIG,
            "predictions": preds + controls,
        },
        masks,
    )

    assert answer["decoded_exact"] == [True] * len(masks)
    for mask, sdk_rle in zip(masks, answer["sdk_rle"], strict=True):
        assert encode_brush(mask) == sdk_rle
        np.testing.assert_array_equal(decode_brush(sdk_rle, *mask.shape), mask)

    for (r, box), corners in zip(rectangles, answer["corners"], strict=True):
        w, h = r["original_width"], r["original_height"]
        clipped = np.clip(box, 0, [w, h, w, h])
        # Corners: top-left, top-right, bottom-right, bottom-left (rotation 0).
        assert corners[0] == pytest.approx(clipped[:2], abs=1e-6)
        assert corners[2] == pytest.approx(clipped[2:], abs=1e-6)

    *ours, bad_label, bad_box = answer["errors"]
    assert ours == [[]] * len(preds)
    assert any("cell phone" in e for e in bad_label), bad_label
    assert any("out of bounds" in e for e in bad_box), bad_box
