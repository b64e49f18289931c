"""Detector adapters: `preprocess` (image -> tensor), `forward` (batch), `postprocess`
(raw outputs -> candidate boxes in original pixels, before NMS).

Two output conventions are supported: NanoDet's per-stride class scores + distance
distributions, and YOLOv8/YOLO11's `[B, 4+C, N]` (cx, cy, w, h, class scores).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.inference.manifest import InputSpec
from app.inference.preprocess import F32, Transform, preprocess


@dataclass(frozen=True)
class Candidates:
    """Detections before NMS. boxes: [N,4] float32 XYXY original-image pixels; scores: [N]
    float32 in [0,1]; class_ids: [N] int64 indices into the model's labels."""

    boxes: F32
    scores: F32
    class_ids: npt.NDArray[np.int64]

    @staticmethod
    def empty() -> Candidates:
        return Candidates(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        )


@dataclass(frozen=True)
class DetectItem:
    """One queued detection: a CHW tensor, its transform and the lowest score to keep."""

    tensor: F32
    transform: Transform
    min_score: float


class Detector(ABC):
    """A detection model on one ONNX Runtime session. Thread-safe: `session.run` is."""

    def __init__(self, session: Any, spec: InputSpec, labels: Sequence[str]) -> None:
        self.session = session
        self.spec = spec
        self.labels = tuple(labels)
        self._input = session.get_inputs()[0].name

    def preprocess(self, image: npt.NDArray[np.uint8], min_score: float) -> DetectItem:
        """HWC uint8 RGB -> queued item."""
        tensor, transform = preprocess(image, self.spec)
        return DetectItem(tensor, transform, min_score)

    def forward(self, batch: F32) -> list[list[F32]]:
        """[B,3,H,W] -> per item, the list of output arrays with the batch dim removed."""
        if self.spec.fixed_batch == 1:
            return [self.forward(batch[i : i + 1])[0] for i in range(batch.shape[0])]
        outs = self.session.run(None, {self._input: batch})
        return [[o[i] for o in outs] for i in range(batch.shape[0])]

    def run_batch(self, items: Sequence[DetectItem]) -> list[Candidates]:
        """The batch function the scheduler calls."""
        raw = self.forward(np.stack([it.tensor for it in items]))
        return [
            self.postprocess(r, it.transform, it.min_score)
            for r, it in zip(raw, items, strict=True)
        ]

    @abstractmethod
    def postprocess(self, outputs: list[F32], transform: Transform, min_score: float) -> Candidates:
        """One item's outputs (no batch dim) -> candidates above `min_score`."""


class NanoDet(Detector):
    """NanoDet(-Plus/-g) heads: per stride, scores [g*g, C] (sigmoid applied) and distance
    distributions [g*g, 4*(reg_max+1)] over the sides (left, top, right, bottom)."""

    def postprocess(self, outputs: list[F32], transform: Transform, min_score: float) -> Candidates:
        n_cls = len(self.labels)
        scores = {o.shape[0]: o for o in outputs if o.shape[1] == n_cls}
        dists = {o.shape[0]: o for o in outputs if o.shape[1] != n_cls}
        boxes_all, scores_all, cls_all = [], [], []
        for cells, cls_scores in scores.items():
            best = cls_scores.argmax(axis=1)
            best_score = cls_scores[np.arange(cells), best]
            keep = np.nonzero(best_score >= min_score)[0]
            if keep.size == 0:
                continue
            g = round(cells**0.5)
            stride = self.spec.width / g
            dist = dists[cells][keep].reshape(keep.size, 4, -1)
            bins = np.arange(dist.shape[2], dtype=np.float32)
            e = np.exp(dist - dist.max(axis=2, keepdims=True))
            ltrb = (e * bins).sum(axis=2) / e.sum(axis=2) * stride
            cx = (keep % g + 0.5) * stride
            cy = (keep // g + 0.5) * stride
            boxes_all.append(
                np.stack([cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2], cy + ltrb[:, 3]], 1)
            )
            scores_all.append(best_score[keep])
            cls_all.append(best[keep])
        if not boxes_all:
            return Candidates.empty()
        boxes = transform.to_image(np.concatenate(boxes_all).astype(np.float32))
        return Candidates(
            boxes,
            np.concatenate(scores_all).astype(np.float32),
            np.concatenate(cls_all).astype(np.int64),
        )


class Yolo(Detector):
    """YOLOv8 / YOLO11 export: one output [4+C, N] per image: cx, cy, w, h in letterboxed
    input pixels, then C class scores (already sigmoid), no objectness."""

    def postprocess(self, outputs: list[F32], transform: Transform, min_score: float) -> Candidates:
        pred = outputs[0]
        n_cls = pred.shape[0] - 4
        if n_cls != len(self.labels):
            raise ValueError(f"model gives {n_cls} classes but {len(self.labels)} labels are set")
        cls_scores = pred[4:]
        best = cls_scores.argmax(axis=0)
        best_score = cls_scores[best, np.arange(pred.shape[1])]
        keep = np.nonzero(best_score >= min_score)[0]
        cx, cy, w, h = pred[0, keep], pred[1, keep], pred[2, keep], pred[3, keep]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).astype(np.float32)
        return Candidates(
            transform.to_image(boxes),
            best_score[keep].astype(np.float32),
            best[keep].astype(np.int64),
        )


DETECTORS: dict[str, type[Detector]] = {"nanodet": NanoDet, "yolo": Yolo}
