"""Masks -> COCO RLE, bbox, area and polygons, checked against pycocotools and known shapes."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from pycocotools import mask as coco_mask

from app.domain.masks import decode, encode, polygons

Mask = npt.NDArray[np.bool_]
H, W = 37, 61  # non-square and odd, so a row/column-major mix-up cannot round-trip


def rectangle(x: int, y: int, w: int, h: int) -> Mask:
    m = np.zeros((H, W), bool)
    m[y : y + h, x : x + w] = True
    return m


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_mask_round_trips(seed: int) -> None:
    mask = np.random.default_rng(seed).random((H, W)) < 0.4
    enc = encode(mask)
    assert enc.rle["size"] == [H, W]
    assert isinstance(enc.rle["counts"], str)  # JSON-ready
    assert enc.area == int(mask.sum())
    out = decode(enc.rle)
    assert out.dtype == np.bool_
    assert out.shape == (H, W)
    np.testing.assert_array_equal(out, mask)


def test_rle_is_the_coco_encoding() -> None:
    # Another COCO reader (pycocotools given bytes counts) decodes it to the same mask.
    mask = np.random.default_rng(3).random((H, W)) < 0.5
    rle = encode(mask).rle
    counts = rle["counts"]
    assert isinstance(counts, str)
    raw = coco_mask.decode({"size": [H, W], "counts": counts.encode("ascii")})
    np.testing.assert_array_equal(raw.astype(bool), mask)


def test_decode_accepts_bytes_counts() -> None:
    mask = rectangle(3, 4, 10, 5)
    counts = encode(mask).rle["counts"]
    assert isinstance(counts, str)
    np.testing.assert_array_equal(decode({"size": [H, W], "counts": counts.encode()}), mask)


def test_rectangle_bbox_is_xywh_and_area_is_pixel_count() -> None:
    enc = encode(rectangle(x=8, y=5, w=12, h=7))
    assert enc.bbox == (8.0, 5.0, 12.0, 7.0)
    assert enc.area == 84


def test_one_pixel_mask() -> None:
    enc = encode(rectangle(x=W - 1, y=H - 1, w=1, h=1))
    assert enc.bbox == (W - 1.0, H - 1.0, 1.0, 1.0)
    assert enc.area == 1


def test_empty_mask() -> None:
    empty = np.zeros((H, W), bool)
    enc = encode(empty)
    assert enc.area == 0
    assert enc.bbox == (0.0, 0.0, 0.0, 0.0)
    assert enc.rle["size"] == [H, W]
    np.testing.assert_array_equal(decode(enc.rle), empty)
    assert polygons(empty) == []


def test_rectangle_gives_one_axis_aligned_quadrilateral() -> None:
    polys = polygons(rectangle(x=8, y=5, w=12, h=7))
    assert len(polys) == 1
    xs, ys = polys[0][0::2], polys[0][1::2]
    assert len(xs) == 4
    assert min(xs) == 8.0
    assert min(ys) == 5.0
    assert len(set(xs)) == 2
    assert len(set(ys)) == 2
    assert max(xs) in (19.0, 20.0)  # right edge: last pixel's index or its far corner
    assert max(ys) in (11.0, 12.0)


def test_two_blobs_give_two_polygons_and_specks_are_dropped() -> None:
    mask = rectangle(2, 2, 10, 10) | rectangle(30, 15, 20, 12)
    mask[35, 5] = True  # a single pixel: a 1-point contour, under 3 points
    polys = polygons(mask)
    assert len(polys) == 2
    assert sorted(min(p[0::2]) for p in polys) == [2.0, 30.0]


def test_polygon_rasterises_back_to_the_mask() -> None:
    mask = rectangle(x=8, y=5, w=12, h=7)
    rle = coco_mask.merge(coco_mask.frPyObjects(polygons(mask), H, W))
    np.testing.assert_array_equal(coco_mask.decode(rle).astype(bool), mask)
