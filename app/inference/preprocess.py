"""Image -> network tensor, and the transform that maps network pixels back to the image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from app.inference.manifest import InputSpec

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Transform:
    """Maps network-input pixels to original-image pixels: x = (x_net - pad_x) / scale_x.

    `width`/`height` are the original image size (pixels, HWC array's W and H).
    """

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    width: int
    height: int

    def to_image(self, boxes: F32) -> F32:
        """[N,4] XYXY network pixels -> [N,4] XYXY image pixels, clipped to the image."""
        out = boxes.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale_x
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale_y
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, self.width)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, self.height)
        return out


def preprocess(image: npt.NDArray[np.uint8], spec: InputSpec) -> tuple[F32, Transform]:
    """HWC uint8 RGB image -> CHW float32 tensor of spec.height x spec.width, and its transform.

    `stretch` resizes to the input size ignoring aspect; `letterbox` keeps aspect and pads
    evenly with grey 114 (YOLO); `longest-side` keeps aspect, scales the longest side to the input
    size and zero-pads bottom/right after normalising (SAM).
    """
    h, w = image.shape[:2]
    tw, th = spec.width, spec.height
    if spec.resize == "stretch":
        return _blob(image, spec, (tw, th)), Transform(tw / w, th / h, 0.0, 0.0, w, h)
    s = min(tw / w, th / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if spec.resize == "letterbox":
        px, py = (tw - nw) // 2, (th - nh) // 2
        canvas = np.full((th, tw, 3), 114, dtype=np.uint8)
        canvas[py : py + nh, px : px + nw] = resized
        return _blob(canvas, spec, (tw, th)), Transform(s, s, float(px), float(py), w, h)
    tensor = np.zeros((3, th, tw), dtype=np.float32)
    tensor[:, :nh, :nw] = _blob(resized, spec, (nw, nh))
    return tensor, Transform(s, s, 0.0, 0.0, w, h)


def _blob(rgb: npt.NDArray[Any], spec: InputSpec, size: tuple[int, int]) -> F32:
    """HWC uint8 RGB -> CHW float32 (value - mean) / std in `spec.color` order, resized
    (bilinear) to `size` = (width, height) when it differs. One pass in OpenCV: 0.8 ms for
    NanoDet's 416x416, against 3.7 ms for the same arithmetic in numpy."""
    params = cv2.dnn.Image2BlobParams()
    params.size = size
    params.swapRB = spec.color == "BGR"
    params.mean = (*spec.mean, 0.0)  # in the output channel order
    params.scalefactor = (*(1.0 / s for s in spec.std), 0.0)
    params.ddepth = cv2.CV_32F
    blob = cv2.dnn.blobFromImageWithParams(rgb, params)
    return np.asarray(blob[0], dtype=np.float32)
