"""COCO detection and instance segmentation: a full dataset, a results file, and a reader.

Coordinates are COCO's, which are Prelabel's: pixels, origin at the top-left corner of pixel
(0, 0), so a pixel spans [x, x+1) x [y, y+1). `bbox` is [x, y, w, h] made from the record's
box [x1, y1, x2, y2] (the detector's box, not the mask's extent). Masks are [H, W] bool at the
image's size; `segmentation` is COCO compressed RLE (column-major, `counts` a str, via
pycocotools) or polygons (flat [x1, y1, x2, y2, ...] lists traced on pixel corners).

Ids: categories are 1..N in the given order; images keep `ImageRecord.image_id` and the ones
without get the smallest unused positive ids, in order; annotations are 1..M. COCOeval treats
an annotation id of 0 as "unmatched", so no id here is ever 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pycocotools import mask as coco_mask

from app.domain import masks
from app.domain.formats.records import ImageRecord, ObjectRecord
from app.geometry import BoxXYXY, xyxy_to_xywh

Segmentation = Literal["rle", "polygon", "none"]

# Douglas-Peucker tolerance for exported polygons, in pixels. Half the API's 1-pixel default:
# files become training data, where fidelity beats size; at 1 pixel a ~1,700-pixel SAM mask
# already loses over 2% IoU.
POLYGON_EPSILON = 0.5


def to_coco(
    images: Sequence[ImageRecord],
    categories: Sequence[str],
    segmentation: Segmentation = "rle",
) -> dict[str, Any]:
    """A COCO dataset dict (json.dump-able): info, licenses, images, categories, annotations.

    `area` is the mask's pixel count when the object has a mask, else w * h. With "polygon", a
    mask that yields no polygon of 3 or more points (empty, or specks) is written as RLE
    instead, so no object loses its segmentation; holes are not represented by polygons.
    Objects without a mask get no `segmentation` key. Raises ValueError for a label not in
    `categories`, a mask of the wrong shape, or duplicate image ids / category names.
    """
    cat_ids = _category_ids(categories)
    annotations: list[dict[str, Any]] = []
    for image_id, image, obj in _objects(images):
        ann: dict[str, Any] = {
            "id": len(annotations) + 1,
            "image_id": image_id,
            "category_id": _category(cat_ids, obj.label),
            "bbox": _xywh(obj.box),
            "iscrowd": 0,
        }
        mask = _mask(image, obj)
        ann["area"] = float(mask.sum()) if mask is not None else _w_h_area(obj.box)
        if mask is not None and segmentation != "none":
            polys = masks.polygons(mask, POLYGON_EPSILON) if segmentation == "polygon" else []
            ann["segmentation"] = polys or masks.encode(mask).rle
        if obj.score is not None:
            ann["score"] = obj.score
        annotations.append(ann)
    return {
        "info": {"description": "exported by Prelabel"},
        "licenses": [],
        "images": [
            {"id": i, "file_name": im.file_name, "width": im.width, "height": im.height}
            for i, im in zip(_image_ids(images), images, strict=True)
        ],
        "categories": [{"id": cat_ids[n], "name": n} for n in categories],
        "annotations": annotations,
    }


def to_coco_results(
    images: Sequence[ImageRecord],
    categories: Sequence[str],
    segmentation: bool = True,
) -> list[dict[str, Any]]:
    """The results-file form `COCO.loadRes` / `COCOeval` take: one dict per object with
    image_id, category_id, bbox [x, y, w, h], score and, when `segmentation` and the object has
    a mask, an RLE `segmentation` (results files only carry RLE). Image and category ids are
    assigned exactly as `to_coco` assigns them for the same arguments, so a results file
    matches the dataset written from the same images. Raises ValueError for an unknown label
    or an object without a score (a result without one cannot be ranked).
    """
    cat_ids = _category_ids(categories)
    out: list[dict[str, Any]] = []
    for image_id, image, obj in _objects(images):
        if obj.score is None:
            raise ValueError(f"object {obj.label!r} in {image.file_name!r} has no score")
        res: dict[str, Any] = {
            "image_id": image_id,
            "category_id": _category(cat_ids, obj.label),
            "bbox": _xywh(obj.box),
            "score": obj.score,
        }
        mask = _mask(image, obj)
        if segmentation and mask is not None:
            res["segmentation"] = masks.encode(mask).rle
        out.append(res)
    return out


def from_coco(doc: Mapping[str, Any]) -> list[ImageRecord]:
    """A COCO dataset dict -> records, images in document order, objects in annotation order.
    Boxes come from `bbox` ([x, y, w, h] -> [x1, y1, x2, y2]); masks are decoded from RLE
    (compressed, str or bytes counts, or uncompressed) or rasterised from polygons by
    pycocotools; `score` is kept when present. A dangling image or category id: ValueError."""
    names = {c["id"]: str(c["name"]) for c in doc.get("categories", [])}
    by_image: dict[int, list[ObjectRecord]] = {im["id"]: [] for im in doc["images"]}
    sizes = {im["id"]: (int(im["height"]), int(im["width"])) for im in doc["images"]}
    for ann in doc.get("annotations", []):
        if ann["image_id"] not in sizes or ann["category_id"] not in names:
            raise ValueError(f"annotation {ann.get('id')} names an unknown image or category")
        x, y, w, h = (float(v) for v in ann["bbox"])
        seg = ann.get("segmentation")
        mask = _decode(seg, *sizes[ann["image_id"]]) if seg else None
        score = ann.get("score")
        by_image[ann["image_id"]].append(
            ObjectRecord(
                names[ann["category_id"]],
                (x, y, x + w, y + h),
                None if score is None else float(score),
                mask,
            )
        )
    return [
        ImageRecord(
            str(im["file_name"]),
            int(im["width"]),
            int(im["height"]),
            tuple(by_image[im["id"]]),
            int(im["id"]),
        )
        for im in doc["images"]
    ]


def _decode(seg: Any, height: int, width: int) -> npt.NDArray[np.bool_]:
    if isinstance(seg, dict) and not isinstance(seg["counts"], list):
        return masks.decode(seg)
    # Polygons ([[x1, y1, ...], ...]) and uncompressed RLE: pycocotools compresses them.
    rles = coco_mask.frPyObjects(seg, height, width)
    rle = coco_mask.merge(rles) if isinstance(rles, list) else rles
    return np.asarray(coco_mask.decode(rle), dtype=bool)


def _category_ids(categories: Sequence[str]) -> dict[str, int]:
    if len(set(categories)) != len(categories):
        raise ValueError("category names must be unique")
    return {name: i for i, name in enumerate(categories, start=1)}


def _category(cat_ids: Mapping[str, int], label: str) -> int:
    if label not in cat_ids:
        raise ValueError(f"label {label!r} is not one of the categories")
    return cat_ids[label]


def _image_ids(images: Sequence[ImageRecord]) -> list[int]:
    given = [im.image_id for im in images if im.image_id is not None]
    if len(set(given)) != len(given):
        raise ValueError("image ids must be unique")
    used, ids, nxt = set(given), [], 1
    for im in images:
        if im.image_id is None:
            while nxt in used:
                nxt += 1
            used.add(nxt)
            ids.append(nxt)
        else:
            ids.append(im.image_id)
    return ids


def _objects(images: Sequence[ImageRecord]) -> Iterator[tuple[int, ImageRecord, ObjectRecord]]:
    for image_id, image in zip(_image_ids(images), images, strict=True):
        for obj in image.objects:
            yield image_id, image, obj


def _mask(image: ImageRecord, obj: ObjectRecord) -> npt.NDArray[np.bool_] | None:
    if obj.mask is not None and obj.mask.shape != (image.height, image.width):
        raise ValueError(
            f"mask of {obj.label!r} in {image.file_name!r} is {obj.mask.shape}, "
            f"not [H, W] = [{image.height}, {image.width}]"
        )
    return obj.mask


def _xywh(box: BoxXYXY) -> list[float]:
    return [float(v) for v in xyxy_to_xywh(box)]


def _w_h_area(box: BoxXYXY) -> float:
    x1, y1, x2, y2 = box
    return float((x2 - x1) * (y2 - y1))
