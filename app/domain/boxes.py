"""Box post-processing shared by every detector: per-class NMS and filtering."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from app.geometry import BoxXYXY
from app.inference.detectors import Candidates


@dataclass(frozen=True)
class Detection:
    """One box: label, score in [0,1], box [x1, y1, x2, y2] in original-image pixels."""

    label: str
    score: float
    box: BoxXYXY


def select(
    cands: Candidates,
    labels: Sequence[str],
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
    classes: frozenset[str] | None = None,
) -> list[Detection]:
    """Per-class NMS (OpenCV), then keep the `max_detections` best, highest score first."""
    keep = cands.scores >= score_threshold
    if classes is not None:
        wanted = np.array([labels[c] in classes for c in cands.class_ids], dtype=bool)
        keep &= wanted if wanted.size else keep
    boxes, scores, cls = cands.boxes[keep], cands.scores[keep], cands.class_ids[keep]
    if len(scores) == 0:
        return []
    xywh = boxes.copy()
    xywh[:, 2:] -= xywh[:, :2]  # OpenCV's NMS takes (x, y, w, h)
    # Scores are already filtered (>=); OpenCV keeps only scores strictly above its threshold.
    idx = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), cls.tolist(), 0.0, iou_threshold)
    order = sorted(np.asarray(idx, dtype=np.int64).reshape(-1), key=lambda i: -scores[i])
    return [
        Detection(
            labels[int(cls[i])],
            round(float(scores[i]), 4),
            (
                round(float(boxes[i, 0]), 1),
                round(float(boxes[i, 1]), 1),
                round(float(boxes[i, 2]), 1),
                round(float(boxes[i, 3]), 1),
            ),
        )
        for i in order[:max_detections]
    ]
