"""Keypoint adapters. MoveNet MultiPose (TF Hub's movenet/multipose/lightning, converted from
TF.js): input `[1, H, W, 3]` int32 RGB 0..255 with H, W multiples of 32 (the longer side 256
is the model's design size); output `[1, 6, 56]`, one row per candidate instance:
K = 17 keypoints as (y, x, score) normalised to the input, then (ymin, xmin, ymax, xmax,
score). The row layout depends only on K, so the same decoder serves any MoveNet-style model
whose manifest entry lists its keypoint names.

`preprocess` keeps the aspect ratio: the image is scaled so its longer side is `size`, then
padded bottom/right (black) to multiples of 32; coordinates map back by dividing by the scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from app.geometry import BoxXYXY

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class KeypointItem:
    """One queued image: the input tensor and its scale (input pixels per image pixel)."""

    tensor: npt.NDArray[np.int32]
    scale: float


@dataclass(frozen=True)
class Instance:
    """One instance in image pixels: box [x1, y1, x2, y2], score, keypoints [K, 3] as
    (x, y, score)."""

    box: BoxXYXY
    score: float
    keypoints: F32


class MoveNet:
    def __init__(self, session: Any, names: Sequence[str], size: int = 256) -> None:
        self.session = session
        self.names = tuple(names)
        self.size = size
        self._input = session.get_inputs()[0].name

    def preprocess(self, rgb: npt.NDArray[np.uint8]) -> KeypointItem:
        h, w = rgb.shape[:2]
        scale = self.size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        ph, pw = -(-nh // 32) * 32, -(-nw // 32) * 32
        canvas = np.zeros((ph, pw, 3), np.int32)
        canvas[:nh, :nw] = resized
        return KeypointItem(canvas[None], scale)

    def run_batch(self, items: Sequence[KeypointItem]) -> list[F32]:
        """Each item -> its raw [N, 3K+5] rows (one forward per image: the graph's batch is
        fixed at 1 and input sizes differ)."""
        return [
            np.asarray(self.session.run(None, {self._input: it.tensor})[0][0], np.float32)
            for it in items
        ]

    def decode(
        self, rows: F32, item: KeypointItem, width: int, height: int, min_score: float
    ) -> list[Instance]:
        """Rows -> instances scoring at least `min_score`, best first, in image pixels
        (clipped to the image)."""
        k = len(self.names)
        ph, pw = item.tensor.shape[1:3]
        out = []
        for row in rows:
            score = float(row[3 * k + 4])
            if score < min_score:
                continue
            kp = row[: 3 * k].reshape(k, 3)
            xs = np.clip(kp[:, 1] * pw / item.scale, 0, width)
            ys = np.clip(kp[:, 0] * ph / item.scale, 0, height)
            y1, x1, y2, x2 = row[3 * k : 3 * k + 4]
            box = (
                float(np.clip(x1 * pw / item.scale, 0, width)),
                float(np.clip(y1 * ph / item.scale, 0, height)),
                float(np.clip(x2 * pw / item.scale, 0, width)),
                float(np.clip(y2 * ph / item.scale, 0, height)),
            )
            points = np.stack([xs, ys, kp[:, 2]], axis=1).astype(np.float32)
            out.append(Instance(box, score, points))
        return sorted(out, key=lambda i: -i.score)
