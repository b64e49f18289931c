"""Binary masks -> COCO RLE (pycocotools), bbox, area, polygons."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from pycocotools import mask as coco_mask

from app.geometry import BoxXYWH


@dataclass(frozen=True)
class EncodedMask:
    """rle: COCO RLE {"size": [H, W], "counts": str} (column-major, as COCO defines it);
    bbox: [x, y, w, h] pixels (COCO convention); area: pixel count."""

    rle: dict[str, object]
    bbox: BoxXYWH
    area: int


def encode(mask: npt.NDArray[np.bool_]) -> EncodedMask:
    """[H,W] bool -> COCO RLE with its bbox and area."""
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    x, y, w, h = (float(v) for v in coco_mask.toBbox(rle))
    area = int(coco_mask.area(rle))
    counts = rle["counts"]
    return EncodedMask(
        {"size": [int(s) for s in rle["size"]], "counts": counts.decode("ascii")},
        (x, y, w, h),
        area,
    )


def decode(rle: dict[str, object]) -> npt.NDArray[np.bool_]:
    """COCO RLE (compressed string counts) -> [H,W] bool."""
    counts = rle["counts"]
    raw = {"size": rle["size"], "counts": counts.encode() if isinstance(counts, str) else counts}
    return np.asarray(coco_mask.decode(raw), dtype=bool)


def polygons(mask: npt.NDArray[np.bool_], epsilon: float = 1.0) -> list[list[float]]:
    """Outer contours as flat [x1, y1, x2, y2, ...] lists in COCO's continuous pixel coordinates
    (origin at the top-left corner of pixel (0, 0), so a pixel spans [x, x+1) x [y, y+1)),
    simplified with Douglas-Peucker at `epsilon` pixels; contours under 3 points dropped.

    Contours are traced on the grid of pixel corners, not pixel centres: corner (x, y) is inside
    when any of the four pixels touching it is. Tracing centres, as `cv2.findContours` on the
    mask itself does, would put every edge half a pixel inside the mask.
    """
    padded = np.pad(mask.astype(np.uint8), 1)
    corners = padded[:-1, :-1] | padded[:-1, 1:] | padded[1:, :-1] | padded[1:, 1:]
    contours, _ = cv2.findContours(corners, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        c = cv2.approxPolyDP(c, epsilon, True)
        if len(c) >= 3:
            out.append([float(v) for v in c.reshape(-1)])
    return out
