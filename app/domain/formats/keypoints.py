"""Keypoint instances in COCO keypoints, YOLO pose and Label Studio form.

Conventions (pixels of the image as stored; keypoints in the model's order, K of them):

- COCO (`to_coco_keypoints`): one category (`name`, `keypoints` names, 1-based `skeleton`),
  per instance an annotation with `keypoints` `[x, y, v] * K`, `v = 2` (labelled, visible)
  for a keypoint scoring at least `kp_threshold` and `0, 0, 0` otherwise, `num_keypoints` the
  count with v > 0, `bbox` `[x, y, w, h]`, `area` w * h, `iscrowd` 0, `score`. Loadable by
  pycocotools' `COCO` and scored by `COCOeval(..., iouType="keypoints")`; `to_coco_keypoint_results`
  writes the matching results list (`image_id`, `category_id`, `keypoints`, `score`).
- YOLO pose (`to_yolo_pose`): a row per instance `class cx cy w h x1 y1 v1 ... xK yK vK`,
  all normalised to the image size, v as in COCO (ultralytics' `kpt_shape: [K, 3]`).
- Label Studio (`keypoint_results`): per instance a `rectanglelabels` region and one
  `keypointlabels` region per keypoint scoring at least `kp_threshold`, each with
  `parentID` = the rectangle's id (Label Studio's region parent field, so the outliner groups
  a person's points under its box); labels are the keypoint names. `keypoint_task` wraps
  them as one task with a prediction (score: the mean instance score).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from app.domain.formats.labelstudio import pixels_to_percent, region_id
from app.geometry import BoxXYXY


class PointLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def x(self) -> float: ...
    @property
    def y(self) -> float: ...
    @property
    def score(self) -> float: ...


class InstanceLike(Protocol):
    @property
    def label(self) -> str: ...
    @property
    def box(self) -> BoxXYXY: ...
    @property
    def score(self) -> float: ...
    @property
    def keypoints(self) -> Sequence[PointLike]: ...


def _triples(inst: InstanceLike, kp_threshold: float) -> list[float]:
    out: list[float] = []
    for k in inst.keypoints:
        out += [round(k.x, 2), round(k.y, 2), 2] if k.score >= kp_threshold else [0, 0, 0]
    return out


def _category(label: str, names: Sequence[str], skeleton: Sequence[tuple[int, int]]) -> Any:
    return {
        "id": 1,
        "name": label,
        "supercategory": label,
        "keypoints": list(names),
        "skeleton": [list(p) for p in skeleton],
    }


def to_coco_keypoints(
    images: Sequence[tuple[str, int, int, Sequence[InstanceLike]]],
    label: str,
    names: Sequence[str],
    skeleton: Sequence[tuple[int, int]],
    kp_threshold: float = 0.3,
) -> dict[str, Any]:
    """(file_name, width, height, instances) per image -> a COCO keypoints dataset."""
    doc: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [_category(label, names, skeleton)],
    }
    for image_id, (file_name, width, height, instances) in enumerate(images, 1):
        doc["images"].append(
            {"id": image_id, "file_name": file_name, "width": width, "height": height}
        )
        for inst in instances:
            x1, y1, x2, y2 = inst.box
            kps = _triples(inst, kp_threshold)
            doc["annotations"].append(
                {
                    "id": len(doc["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                    "keypoints": kps,
                    "num_keypoints": sum(1 for v in kps[2::3] if v > 0),
                    "score": inst.score,
                }
            )
    return doc


def to_coco_keypoint_results(
    images: Sequence[Sequence[InstanceLike]], kp_threshold: float = 0.0
) -> list[dict[str, Any]]:
    """Instances per image (image ids 1, 2, ... in order) -> a COCO results list."""
    return [
        {
            "image_id": image_id,
            "category_id": 1,
            "keypoints": [v for k in inst.keypoints for v in (round(k.x, 2), round(k.y, 2), 1)]
            if kp_threshold <= 0
            else _triples(inst, kp_threshold),
            "score": inst.score,
        }
        for image_id, instances in enumerate(images, 1)
        for inst in instances
    ]


def to_yolo_pose(
    instances: Sequence[InstanceLike], width: int, height: int, kp_threshold: float = 0.3
) -> str:
    """One row per instance (class 0), normalised; a text ending in a newline (or empty)."""
    rows = []
    for inst in instances:
        x1, y1, x2, y2 = inst.box
        vals = [
            (x1 + x2) / 2 / width,
            (y1 + y2) / 2 / height,
            (x2 - x1) / width,
            (y2 - y1) / height,
        ]
        for k in inst.keypoints:
            if k.score >= kp_threshold:
                vals += [k.x / width, k.y / height, 2]
            else:
                vals += [0, 0, 0]
        rows.append(
            " ".join(["0", *(f"{v:.6f}" if isinstance(v, float) else str(v) for v in vals)])
        )
    return "".join(r + "\n" for r in rows)


def keypoint_results(
    instances: Sequence[InstanceLike],
    width: int,
    height: int,
    kp_threshold: float = 0.3,
    rect_name: str = "box",
    kp_name: str = "kp",
    to_name: str = "image",
    point_width: float = 0.5,
) -> list[dict[str, Any]]:
    """Label Studio results: a rectangle per instance, its keypoints as children."""
    out: list[dict[str, Any]] = []
    for i, inst in enumerate(instances):
        x1, y1, x2, y2 = inst.box
        if x2 <= x1 or y2 <= y1:
            continue
        rid = region_id(rect_name, "rectanglelabels", i)
        x, y = pixels_to_percent(x1, y1, width, height)
        w, h = pixels_to_percent(x2 - x1, y2 - y1, width, height)
        base = {"to_name": to_name, "original_width": width, "original_height": height}
        out.append(
            {
                **base,
                "id": rid,
                "from_name": rect_name,
                "type": "rectanglelabels",
                "image_rotation": 0,
                "score": inst.score,
                "value": {
                    "x": x,
                    "y": y,
                    "width": w,
                    "height": h,
                    "rotation": 0,
                    "rectanglelabels": [inst.label],
                },
            }
        )
        for j, k in enumerate(inst.keypoints):
            if k.score < kp_threshold:
                continue
            px, py = pixels_to_percent(k.x, k.y, width, height)
            out.append(
                {
                    **base,
                    "id": region_id(kp_name, "keypointlabels", f"{i}.{j}"),
                    "from_name": kp_name,
                    "type": "keypointlabels",
                    "parentID": rid,
                    "image_rotation": 0,
                    "score": k.score,
                    "value": {"x": px, "y": py, "width": point_width, "keypointlabels": [k.name]},
                }
            )
    return out


def keypoint_task(
    file_name: str,
    instances: Sequence[InstanceLike],
    width: int,
    height: int,
    model_version: str,
    kp_threshold: float = 0.3,
) -> dict[str, Any]:
    """A Label Studio task for one image: `data.image` = file_name, one prediction."""
    scores = [i.score for i in instances]
    pred = {
        "result": keypoint_results(instances, width, height, kp_threshold),
        "score": sum(scores) / len(scores) if scores else None,
        "model_version": model_version,
    }
    return {"data": {"image": file_name}, "predictions": [pred]}
