"""DB (Differentiable Binarization) text-detection post-processing, as PaddleOCR defines it
for PP-OCR detectors: probability map -> quadrilaterals in the network input's pixels scaled to
the image's.

A contour of the thresholded (and 2x2-dilated) map gives a minimum-area rectangle; its score is
the mean probability inside it; it is grown ("unclipped") by `area * ratio / perimeter` with
Clipper's round offset (pyclipper), and the rectangle around the grown shape is the box.
OpenCV does contours, rectangles and the mean; pyclipper the polygon offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import pyclipper  # type: ignore[import-untyped]

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class DbParams:
    thresh: float = 0.3  # pixel threshold on the probability map
    box_thresh: float = 0.5  # a box's mean probability must reach this
    max_candidates: int = 1000
    unclip_ratio: float = 1.6
    min_size: int = 3


def mini_box(contour: npt.NDArray[np.float32]) -> tuple[F32, float]:
    """The minimum-area rectangle around `contour` as 4 points (top-left, top-right,
    bottom-right, bottom-left by PaddleOCR's rule) and its shorter side."""
    rect = cv2.minAreaRect(contour)
    pts = sorted(cv2.boxPoints(rect).tolist(), key=lambda p: p[0])
    i1, i4 = (0, 1) if pts[1][1] > pts[0][1] else (1, 0)
    i2, i3 = (2, 3) if pts[3][1] > pts[2][1] else (3, 2)
    box = np.array([pts[i1], pts[i2], pts[i3], pts[i4]], np.float32)
    return box, float(min(rect[1]))


def box_score(prob: F32, box: F32) -> float:
    """Mean of `prob` [H,W] inside the (integer-rounded) polygon `box` [4,2]."""
    h, w = prob.shape
    xmin = int(np.clip(np.floor(box[:, 0].min()), 0, w - 1))
    xmax = int(np.clip(np.ceil(box[:, 0].max()), 0, w - 1))
    ymin = int(np.clip(np.floor(box[:, 1].min()), 0, h - 1))
    ymax = int(np.clip(np.ceil(box[:, 1].max()), 0, h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), np.uint8)
    shifted = (box - np.array([xmin, ymin], np.float32)).astype(np.int32)
    cv2.fillPoly(mask, [shifted.reshape(-1, 2)], 1)
    return float(cv2.mean(prob[ymin : ymax + 1, xmin : xmax + 1], mask)[0])


def unclip(box: F32, ratio: float) -> npt.NDArray[np.float32]:
    """Grow the polygon by area * ratio / perimeter (round joins); [N,1,2] float32."""
    area = abs(cv2.contourArea(box))
    length = cv2.arcLength(box, True)
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    grown = offset.Execute(area * ratio / length) if length > 0 else []
    return np.array(grown, np.float32).reshape(-1, 1, 2)


def db_boxes(prob: F32, dest_w: int, dest_h: int, p: DbParams) -> list[tuple[F32, float]]:
    """prob [H,W] float32 in [0,1] -> [(quad [4,2] float32 in a dest_w x dest_h image, score)],
    in contour order. Coordinates are rounded to whole pixels and clipped to [0, dest]."""
    h, w = prob.shape
    bitmap = cv2.dilate((prob > p.thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bitmap * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    out: list[tuple[F32, float]] = []
    for contour in contours[: p.max_candidates]:
        points, side = mini_box(np.asarray(contour, np.float32))
        if side < p.min_size:
            continue
        score = box_score(prob, points)
        if score < p.box_thresh:
            continue
        grown = unclip(points, p.unclip_ratio)
        if len(grown) == 0:
            continue
        box, side = mini_box(grown)
        if side < p.min_size + 2:
            continue
        box[:, 0] = np.clip(np.round(box[:, 0] / w * dest_w), 0, dest_w)
        box[:, 1] = np.clip(np.round(box[:, 1] / h * dest_h), 0, dest_h)
        out.append((box.astype(np.int32).astype(np.float32), score))
    return out
