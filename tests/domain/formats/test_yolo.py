"""YOLO txt export: normalised rows that read back to the real detector's boxes and SAM masks."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from app.domain.formats.records import ImageRecord, ObjectRecord
from app.domain.formats.yolo import classes_txt, from_yolo, to_yolo

Records = tuple[ImageRecord, ...]


def iou(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_box_rows_are_normalised_and_read_back(
    real_records: Records, categories: list[str]
) -> None:
    for record in real_records:
        text = to_yolo(record, categories)
        rows = [line.split() for line in text.splitlines()]
        assert text.endswith("\n")
        assert len(rows) == len(record.objects)
        for row, obj in zip(rows, record.objects, strict=True):
            assert len(row) == 5
            assert categories[int(row[0])] == obj.label
            assert all(len(v.split(".")[1]) == 6 and 0.0 <= float(v) <= 1.0 for v in row[1:])
        back = from_yolo(text, record.width, record.height, categories)
        assert [o.label for o in back] == [o.label for o in record.objects]
        for o, p in zip(back, record.objects, strict=True):
            assert o.score is None and o.mask is None
            tol = [1e-3 * s for s in (record.width, record.height) * 2]
            assert np.all(np.abs(np.subtract(o.box, p.box)) <= tol), (o.box, p.box)


def test_segment_rows_rasterise_close_to_the_masks(
    real_records: Records, categories: list[str]
) -> None:
    for record in real_records:
        text = to_yolo(record, categories, segmentation=True)
        rows = [line.split() for line in text.splitlines()]
        assert len(rows) == len(record.objects)
        for row in rows:
            assert len(row) >= 7 and len(row) % 2 == 1  # class + at least 3 (x, y) pairs
            assert all(0.0 <= float(v) <= 1.0 for v in row[1:])
        back = from_yolo(text, record.width, record.height, categories)
        for o, p in zip(back, record.objects, strict=True):
            assert o.label == p.label
            assert o.mask is not None and p.mask is not None
            assert o.mask.shape == (record.height, record.width)
            assert iou(o.mask, p.mask) > 0.95
            # The box is the polygon's extent, which its rasterisation's pixel extent matches
            # (the source mask's own extent may be wider: only its largest part is written).
            ys, xs = np.nonzero(o.mask)
            assert o.box == pytest.approx((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), abs=1.0)


def test_classes_txt_lists_one_name_per_line() -> None:
    names = ["person", "traffic light", "café"]
    assert classes_txt(names) == "person\ntraffic light\ncafé\n"
    assert classes_txt(names).splitlines() == names
    with pytest.raises(ValueError, match="unique"):
        classes_txt(["a", "a"])
    with pytest.raises(ValueError, match="line breaks"):
        classes_txt(["a\nb"])


def test_known_values_and_clipping() -> None:
    image = ImageRecord(
        "x.jpg",
        200,
        100,
        (
            ObjectRecord("dog", (20.0, 10.0, 60.0, 50.0)),
            ObjectRecord("cat", (-5.0, 80.0, 210.0, 100.5)),  # overshoots the image: clipped
        ),
    )
    assert to_yolo(image, ["cat", "dog"]) == (
        "1 0.200000 0.300000 0.200000 0.400000\n0 0.500000 0.900000 1.000000 0.200000\n"
    )
    assert to_yolo(ImageRecord("empty.jpg", 200, 100), ["cat"]) == ""


def test_box_only_objects_become_rectangles_in_segment_files() -> None:
    mask = np.zeros((100, 200), bool)
    mask[20:40, 30:90] = True
    image = ImageRecord(
        "x.jpg",
        200,
        100,
        (
            ObjectRecord("dog", (20.0, 10.0, 60.0, 50.0)),
            ObjectRecord("cat", (30.0, 20.0, 90.0, 40.0), 0.8, mask),
        ),
    )
    text = to_yolo(image, ["cat", "dog"], segmentation=True)
    dog, cat = from_yolo(text, 200, 100, ["cat", "dog"])
    assert dog.box == pytest.approx((20.0, 10.0, 60.0, 50.0))
    assert dog.mask is not None and dog.mask.sum() == 40 * 40
    assert cat.box == pytest.approx((30.0, 20.0, 90.0, 40.0))
    assert cat.mask is not None
    np.testing.assert_array_equal(cat.mask, mask)


@pytest.mark.parametrize("big_first", [True, False])
def test_segment_row_keeps_the_largest_part(big_first: bool) -> None:
    # Two parts, the big one above or below the small one, so neither contour order wins.
    mask = np.zeros((100, 80), bool)
    big, small = (slice(5, 45), slice(10, 70)), (slice(70, 75), slice(30, 35))
    if not big_first:
        big, small = (slice(55, 95), slice(10, 70)), (slice(10, 15), slice(30, 35))
    mask[big] = True
    mask[small] = True
    image = ImageRecord("x.png", 80, 100, (ObjectRecord("a", (10.0, 5.0, 70.0, 95.0), None, mask),))
    (obj,) = from_yolo(to_yolo(image, ["a"], segmentation=True), 80, 100, ["a"])
    assert obj.mask is not None
    expected = np.zeros_like(mask)
    expected[big] = True
    np.testing.assert_array_equal(obj.mask, expected)


def test_reads_confidences_and_skips_blank_lines() -> None:
    box, seg = from_yolo(
        "\n0 0.5 0.5 0.2 0.4 0.87\n\n1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3 0.5\n", 100, 50, ["a", "b"]
    )
    assert (box.label, box.score) == ("a", 0.87)
    assert box.box == pytest.approx((40.0, 15.0, 60.0, 35.0))
    assert (seg.label, seg.score) == ("b", 0.5)
    assert seg.box == pytest.approx((10.0, 5.0, 30.0, 15.0))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2 0.5 0.5 0.1 0.1", "outside"),
        ("-1 0.5 0.5 0.1 0.1", "outside"),
        ("0 0.5 0.5 0.1", "expected 4"),
        ("cat 0.5 0.5 0.1 0.1", "not a YOLO row"),
        ("0 0.5 0.5 0.1 nan?", "not a YOLO row"),
    ],
)
def test_malformed_rows_raise(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_yolo(text, 100, 100, ["a", "b"])


def test_unknown_label_raises(real_records: Records, categories: list[str]) -> None:
    record = next(r for r in real_records if r.objects)
    with pytest.raises(ValueError, match="not one of the classes"):
        to_yolo(record, [c for c in categories if c != record.objects[0].label])
    with pytest.raises(ValueError, match="unique"):
        to_yolo(record, [*categories, categories[0]])
