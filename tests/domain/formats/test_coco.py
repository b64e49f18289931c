"""COCO export checked by pycocotools itself: the dataset loads, masks decode to the originals,
and COCOeval of the results against the dataset scores a perfect AP (and less when perturbed)."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from app.domain.formats.coco import from_coco, to_coco, to_coco_results
from app.domain.formats.records import ImageRecord, ObjectRecord

Records = tuple[ImageRecord, ...]


def load(doc: dict[str, Any], tmp_path: Path) -> COCO:
    """Through a JSON file, as a user would: proves the document is plain JSON too."""
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(doc))
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def average_precision(gt: COCO, results: list[dict[str, Any]], iou_type: str) -> float:
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(results), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])  # AP @ IoU 0.50:0.95, all areas, 100 detections


def iou(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_dataset_loads_and_rle_masks_are_exact(
    real_records: Records, categories: list[str], tmp_path: Path
) -> None:
    coco = load(to_coco(real_records, categories), tmp_path)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == categories
    assert coco.getCatIds() == list(range(1, len(categories) + 1))
    assert sorted(coco.getImgIds()) == [1, 2, 3]
    for image_id, record in enumerate(real_records, start=1):
        img = coco.loadImgs(image_id)[0]
        assert (img["file_name"], img["width"], img["height"]) == (
            record.file_name,
            record.width,
            record.height,
        )
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert len(anns) == len(record.objects)
        for ann, obj in zip(anns, record.objects, strict=True):
            assert obj.mask is not None
            assert coco.loadCats(ann["category_id"])[0]["name"] == obj.label
            x1, y1, x2, y2 = obj.box
            assert ann["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
            assert ann["area"] == obj.mask.sum()
            assert ann["iscrowd"] == 0
            assert ann["score"] == obj.score
            assert isinstance(ann["segmentation"]["counts"], str)
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), obj.mask)
    assert all(a["id"] > 0 for a in coco.dataset["annotations"])


def test_polygons_rasterise_close_to_the_masks(
    real_records: Records, categories: list[str], tmp_path: Path
) -> None:
    coco = load(to_coco(real_records, categories, segmentation="polygon"), tmp_path)
    anns = coco.dataset["annotations"]
    objects = [o for r in real_records for o in r.objects]
    assert len(anns) == len(objects)
    for ann, obj in zip(anns, objects, strict=True):
        assert obj.mask is not None
        assert isinstance(ann["segmentation"], list)
        assert all(len(p) >= 6 and len(p) % 2 == 0 for p in ann["segmentation"])
        assert iou(coco.annToMask(ann).astype(bool), obj.mask) > 0.98


def test_cocoeval_scores_results_against_the_same_data_perfectly(
    real_records: Records, categories: list[str], tmp_path: Path
) -> None:
    gt = load(to_coco(real_records, categories), tmp_path)
    results = to_coco_results(real_records, categories)
    assert len(results) == sum(len(r.objects) for r in real_records)
    assert all(isinstance(r["segmentation"]["counts"], str) for r in results)
    assert average_precision(gt, results, "bbox") == 1.0
    assert average_precision(gt, results, "segm") == 1.0


def test_cocoeval_notices_wrong_results(
    real_records: Records, categories: list[str], tmp_path: Path
) -> None:
    # The same check on shifted boxes and shrunken masks must fall short of 1.0, or the
    # perfect scores above would prove nothing.
    gt = load(to_coco(real_records, categories), tmp_path)
    shifted = [
        replace(
            r,
            objects=tuple(
                replace(
                    o,
                    box=(o.box[0] + 20, o.box[1] + 20, o.box[2] + 20, o.box[3] + 20),
                    mask=None if o.mask is None else o.mask & np.roll(o.mask, 20, axis=1),
                )
                for o in r.objects
            ),
        )
        for r in real_records
    ]
    results = to_coco_results(shifted, categories)
    assert average_precision(gt, results, "bbox") < 0.9
    assert average_precision(gt, results, "segm") < 0.9


def test_bbox_only_dataset_evaluates(
    real_records: Records, categories: list[str], tmp_path: Path
) -> None:
    doc = to_coco(real_records, categories, segmentation="none")
    assert all("segmentation" not in a for a in doc["annotations"])
    gt = load(doc, tmp_path)
    results = to_coco_results(real_records, categories, segmentation=False)
    assert all("segmentation" not in r for r in results)
    assert average_precision(gt, results, "bbox") == 1.0


@pytest.mark.parametrize("segmentation", ["rle", "polygon"])
def test_from_coco_round_trip(
    real_records: Records, categories: list[str], segmentation: Any
) -> None:
    doc = json.loads(json.dumps(to_coco(real_records, categories, segmentation)))
    back = from_coco(doc)
    assert [(r.file_name, r.width, r.height, r.image_id) for r in back] == [
        (r.file_name, r.width, r.height, i) for i, r in enumerate(real_records, start=1)
    ]
    for rec, orig in zip(back, real_records, strict=True):
        assert len(rec.objects) == len(orig.objects)
        for o, p in zip(rec.objects, orig.objects, strict=True):
            assert (o.label, o.score) == (p.label, p.score)
            assert o.box == pytest.approx(p.box, abs=1e-9)
            assert o.mask is not None and p.mask is not None
            assert o.mask.shape == (orig.height, orig.width)
            if segmentation == "rle":
                np.testing.assert_array_equal(o.mask, p.mask)
            else:
                assert iou(o.mask, p.mask) > 0.98


def test_boxes_without_masks_and_given_image_ids() -> None:
    images = [
        ImageRecord("a.jpg", 40, 30, (ObjectRecord("cat", (2.0, 3.0, 12.0, 8.0)),), image_id=2),
        ImageRecord("b.jpg", 40, 30, (ObjectRecord("dog", (0.0, 0.0, 4.0, 4.0), 0.5),)),
        ImageRecord("c.jpg", 40, 30),
    ]
    doc = to_coco(images, ["dog", "cat"])
    assert [im["id"] for im in doc["images"]] == [2, 1, 3]  # given ids kept, gaps filled
    a, b = doc["annotations"]
    assert (a["id"], a["image_id"], a["category_id"], a["area"]) == (1, 2, 2, 50.0)
    assert "segmentation" not in a and "score" not in a
    assert (b["id"], b["image_id"], b["category_id"], b["score"]) == (2, 1, 1, 0.5)
    back = from_coco(doc)
    assert back[0].objects == images[0].objects and back[0].image_id == 2
    assert back[2].objects == ()
    with pytest.raises(ValueError, match="unique"):
        to_coco([images[0], replace(images[1], image_id=2)], ["dog", "cat"])
    with pytest.raises(ValueError, match="unknown image or category"):
        from_coco({**doc, "categories": doc["categories"][:1]})


def test_empty_mask_in_polygon_mode_falls_back_to_rle() -> None:
    obj = ObjectRecord("cat", (1.0, 1.0, 3.0, 3.0), 0.9, np.zeros((5, 6), bool))
    ann = to_coco([ImageRecord("x.png", 6, 5, (obj,))], ["cat"], "polygon")["annotations"][0]
    assert isinstance(ann["segmentation"], dict) and ann["area"] == 0


def test_refuses_unknown_labels_missing_scores_and_bad_masks(real_records: Records) -> None:
    known = sorted({o.label for r in real_records for o in r.objects})
    with pytest.raises(ValueError, match="not one of the categories"):
        to_coco(real_records, known[1:])
    with pytest.raises(ValueError, match="not one of the categories"):
        to_coco_results(real_records, known[1:])
    with pytest.raises(ValueError, match="unique"):
        to_coco(real_records, [*known, known[0]])
    unscored = ImageRecord("x.png", 6, 5, (ObjectRecord("cat", (1.0, 1.0, 3.0, 3.0)),))
    with pytest.raises(ValueError, match="no score"):
        to_coco_results([unscored], ["cat"])
    transposed = ObjectRecord("cat", (1.0, 1.0, 3.0, 3.0), 0.9, np.ones((6, 5), bool))
    with pytest.raises(ValueError, match="not \\[H, W\\]"):
        to_coco([ImageRecord("x.png", 6, 5, (transposed,))], ["cat"])
