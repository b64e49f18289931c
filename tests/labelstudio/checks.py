"""What a prediction Label Studio stored should be, computed from Prelabel's own public API for the
same image: `/v1/detect` for boxes, `/v1/sam/segment` for the mask of a prompt."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np
from pycocotools import mask as mask_utils

# The Label Studio predictor's defaults (PRELABEL_LS_SCORE_THRESHOLD), and the labels of the
# image config's `box` control, as the detector's COCO classes.
SCORE_THRESHOLD = 0.35
BOX_CLASSES = {"person": "Person", "cat": "Cat", "dog": "Dog"}
BRUSH_CLASSES = {"person": "Person", "cat": "Cat"}
PERCENT_TOLERANCE = 0.05  # percentage points: what a float round trip may move


def detect(prelabel: str, image: bytes) -> dict[str, Any]:
    """Prelabel's /v1/detect answer (pixels XYXY) at the predictor's score threshold."""
    body = {"image": base64.b64encode(image).decode(), "score_threshold": SCORE_THRESHOLD}
    r = httpx.post(f"{prelabel}/v1/detect", json=body, timeout=120)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


def segment(prelabel: str, image: bytes, **prompt: Any) -> np.ndarray:
    """The first mask /v1/sam/segment answers for `prompt` (`box=[x1, y1, x2, y2]` or
    `points=[{"x", "y", "positive"}]`, pixels): (H, W) bool."""
    body = {"image": base64.b64encode(image).decode(), **prompt}
    r = httpx.post(f"{prelabel}/v1/sam/segment", json=body, timeout=120)
    assert r.status_code == 200, r.text
    rle = r.json()["masks"][0]["rle"]
    decoded: np.ndarray = mask_utils.decode(
        {"size": rle["size"], "counts": rle["counts"].encode()}
    ).astype(bool)
    return decoded


def percent_box(box: list[float], width: int, height: int) -> tuple[float, float, float, float]:
    """Pixels XYXY -> Label Studio's (x, y, width, height) in percent of the image."""
    x1, y1, x2, y2 = box
    return (x1 / width * 100, y1 / height * 100, (x2 - x1) / width * 100, (y2 - y1) / height * 100)


def stored_box(result: dict[str, Any]) -> tuple[float, float, float, float]:
    v = result["value"]
    return (float(v["x"]), float(v["y"]), float(v["width"]), float(v["height"]))


def close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(abs(p - q) <= PERCENT_TOLERANCE for p, q in zip(a, b, strict=True))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.logical_or(a, b).sum())
    return int(np.logical_and(a, b).sum()) / union if union else 1.0
