"""YOLO txt labels (Ultralytics/Darknet): one text file per image, one row per object.

Rows hold a 0-based class index into `classes` and coordinates normalised by the image's size,
written with 6 decimals; boxes are clipped to the image first, so every value is in [0, 1]:

- box rows: `class cx cy w h`, the record's box [x1, y1, x2, y2] (pixels, origin at the
  top-left corner of pixel (0, 0)) as centre and size: cx = (x1 + x2) / 2 / W, w = (x2 - x1) / W;
- segment rows: `class x1 y1 x2 y2 ...`, the outer polygon of the mask's largest connected
  part, traced on pixel corners (`app.domain.masks.polygons`, simplified as the COCO export
  simplifies), so vertex (x, y) is a pixel corner, the same convention as COCO polygons.

The class list ships as `classes.txt` (`classes_txt`): one name per line, line i is class i.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pycocotools import mask as coco_mask

from app.domain import masks
from app.domain.formats.coco import POLYGON_EPSILON
from app.domain.formats.records import ImageRecord, ObjectRecord


def to_yolo(image: ImageRecord, classes: Sequence[str], segmentation: bool = False) -> str:
    """The label file for one image ("" when it has no objects: a background image).

    With `segmentation`, objects with a non-empty mask become segment rows; an object without a
    mask (or whose mask yields no polygon) is written as its box's rectangle, because Ultralytics
    drops every segment of a file that mixes box rows with segment rows. Raises ValueError for
    a label not in `classes` or a mask of the wrong shape.
    """
    index = _index(classes)
    w, h = image.width, image.height
    rows = []
    for obj in image.objects:
        if obj.label not in index:
            raise ValueError(f"label {obj.label!r} is not one of the classes")
        x1, x2 = (min(max(v, 0.0), w) for v in obj.box[0::2])
        y1, y2 = (min(max(v, 0.0), h) for v in obj.box[1::2])
        if not segmentation:
            values = [(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]
        else:
            poly = _largest_polygon(obj.mask, h, w) if obj.mask is not None else None
            if poly is None:
                poly = [x1, y1, x2, y1, x2, y2, x1, y2]
            values = [v / (w if i % 2 == 0 else h) for i, v in enumerate(poly)]
        rows.append(" ".join([str(index[obj.label]), *(f"{_clip(v):.6f}" for v in values)]))
    return "".join(f"{r}\n" for r in rows)


def classes_txt(classes: Sequence[str]) -> str:
    """`classes.txt`: one class name per line, in index order, newline-terminated."""
    _index(classes)
    if any("\n" in c or "\r" in c for c in classes):
        raise ValueError("class names cannot contain line breaks")
    return "".join(f"{c}\n" for c in classes)


def from_yolo(text: str, width: int, height: int, classes: Sequence[str]) -> list[ObjectRecord]:
    """Parse one label file for an image of `width` x `height` pixels.

    Rows of 4 values are boxes; 5 values, a box and a confidence (`save_conf` predictions);
    6 or more, a polygon (with a trailing confidence when the count is odd). A polygon row gets
    its mask rasterised by pycocotools (COCO's polygon convention) and, as Ultralytics does,
    the polygon's extent as its box. Blank lines are skipped; raises ValueError on a malformed
    row or a class index outside `classes`.
    """
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            cls, vals = int(tokens[0]), [float(t) for t in tokens[1:]]
        except ValueError as e:
            raise ValueError(f"line {n}: not a YOLO row: {line!r}") from e
        if not 0 <= cls < len(classes):
            raise ValueError(f"line {n}: class {cls} is outside 0..{len(classes) - 1}")
        score: float | None = None
        if len(vals) % 2 == 1:  # coordinates come in pairs, so an odd count ends in a score
            score, vals = vals[-1], vals[:-1]
        if len(vals) == 4:
            cx, cy, bw, bh = vals
            box = (
                (cx - bw / 2) * width,
                (cy - bh / 2) * height,
                (cx + bw / 2) * width,
                (cy + bh / 2) * height,
            )
            out.append(ObjectRecord(classes[cls], box, score))
        elif len(vals) >= 6:
            xs, ys = np.asarray(vals[0::2]) * width, np.asarray(vals[1::2]) * height
            poly = np.stack([xs, ys], axis=1).reshape(-1).tolist()
            rle = coco_mask.frPyObjects([poly], height, width)[0]
            mask = np.asarray(coco_mask.decode(rle), dtype=bool)
            box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
            out.append(ObjectRecord(classes[cls], box, score, mask))
        else:
            raise ValueError(f"line {n}: {len(vals)} values; expected 4, 5 or a polygon")
    return out


def _index(classes: Sequence[str]) -> dict[str, int]:
    if len(set(classes)) != len(classes):
        raise ValueError("class names must be unique")
    return {c: i for i, c in enumerate(classes)}


def _largest_polygon(mask: npt.NDArray[np.bool_], height: int, width: int) -> list[float] | None:
    if mask.shape != (height, width):
        raise ValueError(f"mask is {mask.shape}, not [H, W] = [{height}, {width}]")
    polys = masks.polygons(mask, POLYGON_EPSILON)
    if not polys:
        return None
    return max(polys, key=_area)


def _area(poly: list[float]) -> float:
    """Shoelace area of a flat [x1, y1, x2, y2, ...] polygon."""
    x, y = np.asarray(poly[0::2]), np.asarray(poly[1::2])
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def _clip(v: float) -> float:
    # Boxes are clipped to the image first; this only catches float rounding, since YOLO
    # readers reject values outside [0, 1].
    return min(max(v, 0.0), 1.0)
