"""Box types, named by their convention, shared by every layer (inference, domain, batch, API).

Coordinates everywhere are original-image pixels, x right, y down, origin at the top-left
corner of the top-left pixel (a pixel (x, y) spans [x, x+1) x [y, y+1)). Two conventions for
a box coexist because the formats need both, so the name says which one a value holds:

- `BoxXYXY`: [x1, y1, x2, y2], the corners (x1 <= x2, y1 <= y2): what models, NMS, prompts,
  the checkpoint and the HTTP responses use;
- `BoxXYWH`: [x, y, w, h], the top-left corner and the size: COCO's `bbox` (masks' bounding
  boxes, COCO output).

They are aliases of the same tuple type (no runtime cost, no conversion); convert with
`xyxy_to_xywh` where a value changes convention.
"""

from __future__ import annotations

BoxXYXY = tuple[float, float, float, float]
BoxXYWH = tuple[float, float, float, float]
PixelBoxXYXY = tuple[int, int, int, int]  # integer pixel corners (Pascal VOC, 1-based there)


def xyxy_to_xywh(box: BoxXYXY) -> BoxXYWH:
    """[x1, y1, x2, y2] -> [x, y, w, h]."""
    x1, y1, x2, y2 = box
    return (x1, y1, x2 - x1, y2 - y1)
