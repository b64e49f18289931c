"""to_arrays(): SAM prompt encoding (labels 1/0 for clicks, 2/3 for box corners, -1 padding)."""

from __future__ import annotations

import numpy as np
import pytest

from app.domain.prompts import Point, Prompt, to_arrays
from app.errors import ValidationFailed

W, H = 640, 480


def test_points_only_get_a_padding_point() -> None:
    coords, labels = to_arrays(Prompt(points=(Point(10.5, 20.0), Point(300, 400))), W, H, 8)
    assert coords.dtype == np.float32
    assert labels.dtype == np.float32
    np.testing.assert_array_equal(coords, [[10.5, 20.0], [300, 400], [0, 0]])
    np.testing.assert_array_equal(labels, [1, 1, -1])


def test_negative_click_is_label_zero() -> None:
    prompt = Prompt(points=(Point(5, 6), Point(7, 8, positive=False)))
    _, labels = to_arrays(prompt, W, H, 8)
    np.testing.assert_array_equal(labels, [1, 0, -1])


def test_box_is_two_corners_labelled_2_and_3_without_padding() -> None:
    coords, labels = to_arrays(Prompt(box=(10, 20, 110, 220)), W, H, 8)
    np.testing.assert_array_equal(coords, [[10, 20], [110, 220]])
    np.testing.assert_array_equal(labels, [2, 3])


def test_points_and_box_put_points_first() -> None:
    prompt = Prompt(points=(Point(50, 60, positive=False),), box=(10, 20, 110, 220))
    coords, labels = to_arrays(prompt, W, H, 8)
    np.testing.assert_array_equal(coords, [[50, 60], [10, 20], [110, 220]])
    np.testing.assert_array_equal(labels, [0, 2, 3])


def test_image_edges_are_inside() -> None:
    coords, _ = to_arrays(Prompt(box=(0, 0, W, H)), W, H, 8)
    np.testing.assert_array_equal(coords, [[0, 0], [W, H]])


def test_max_points_is_allowed_one_more_is_not() -> None:
    points = tuple(Point(i, i) for i in range(4))
    coords, _ = to_arrays(Prompt(points=points), W, H, 4)
    assert coords.shape == (5, 2)
    with pytest.raises(ValidationFailed, match="at most 4"):
        to_arrays(Prompt(points=(*points, Point(9, 9))), W, H, 4)


def test_empty_prompt_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        to_arrays(Prompt(), W, H, 8)


@pytest.mark.parametrize(
    ("x", "y"), [(-1, 10), (10, -0.5), (W + 1, 10), (10, H + 0.5), (float("nan"), 10)]
)
def test_point_outside_the_image_is_refused(x: float, y: float) -> None:
    with pytest.raises(ValidationFailed, match="outside"):
        to_arrays(Prompt(points=(Point(x, y),)), W, H, 8)


@pytest.mark.parametrize(
    "box",
    [(100, 20, 10, 220), (10, 220, 110, 20), (10, 20, 10, 220), (10, 20, 110, 20)],
    ids=["x-inverted", "y-inverted", "zero-width", "zero-height"],
)
def test_inverted_or_empty_box_is_refused(box: tuple[float, float, float, float]) -> None:
    with pytest.raises(ValidationFailed, match="x2 > x1"):
        to_arrays(Prompt(box=box), W, H, 8)


def test_box_reaching_outside_the_image_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="outside"):
        to_arrays(Prompt(box=(10, 20, W + 10, 220)), W, H, 8)
