"""Detector pre/post-processing without a model: YOLO decoding and the letterbox transforms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from app.inference.detectors import Yolo
from app.inference.manifest import InputSpec
from app.inference.preprocess import F32, Transform, preprocess

LABELS = ("person", "car", "dog")


@dataclass(frozen=True)
class _Input:
    name: str


class FakeSession:
    """Just enough of an ONNX Runtime session for the adapter's constructor."""

    def get_inputs(self) -> list[_Input]:
        return [_Input("images")]


def letterbox_spec(width: int = 640, height: int = 640, **kw: object) -> InputSpec:
    return InputSpec.model_validate(
        {
            "width": width,
            "height": height,
            "mean": [0, 0, 0],
            "std": [255, 255, 255],
            "resize": "letterbox",
            **kw,
        }
    )


def yolo_output(
    boxes_net: Sequence[tuple[float, float, float, float]],
    scores: Sequence[Sequence[float]],
    n_extra: int = 5,
) -> F32:
    """[4+C, N]: XYXY network-pixel boxes as cx, cy, w, h rows, then class scores; plus
    `n_extra` all-zero-score columns as background anchors."""
    n, c = len(boxes_net), len(scores[0])
    out = np.zeros((4 + c, n + n_extra), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes_net):
        out[:4, i] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        out[4:, i] = scores[i]
    out[:4, n:] = [[320], [320], [10], [10]]
    return out


@pytest.fixture
def wide() -> Transform:
    """A 320 x 160 image letterboxed into 640 x 640: scale 2, padded 160 px above and below."""
    _, transform = preprocess(np.zeros((160, 320, 3), np.uint8), letterbox_spec())
    return transform


def test_letterbox_transform_of_a_wide_image(wide: Transform) -> None:
    t = wide
    assert t == Transform(2.0, 2.0, 0.0, 160.0, 320, 160)


def test_yolo_boxes_come_back_in_original_pixels(wide: Transform) -> None:
    t = wide
    originals = [(10.0, 20.0, 60.0, 80.0), (100.0, 0.0, 320.0, 160.0), (200.5, 30.25, 210.0, 40.0)]
    net = [(x1 * 2, y1 * 2 + 160, x2 * 2, y2 * 2 + 160) for x1, y1, x2, y2 in originals]
    scores = [[0.1, 0.9, 0.2], [0.7, 0.0, 0.3], [0.05, 0.1, 0.6]]
    det = Yolo(FakeSession(), letterbox_spec(), LABELS)
    got = det.postprocess([yolo_output(net, scores)], t, min_score=0.25)
    np.testing.assert_array_equal(got.boxes, np.asarray(originals, np.float32))
    np.testing.assert_array_equal(got.class_ids, [1, 0, 2])
    np.testing.assert_allclose(got.scores, [0.9, 0.7, 0.6], rtol=0, atol=1e-7)
    assert got.boxes.dtype == np.float32
    assert got.scores.dtype == np.float32
    assert got.class_ids.dtype == np.int64


def test_yolo_min_score_filters(wide: Transform) -> None:
    t = wide
    boxes = [(0.0, 160.0, 10.0, 170.0)] * 3
    out = yolo_output(boxes, [[0.3, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.8]])
    det = Yolo(FakeSession(), letterbox_spec(), LABELS)
    assert det.postprocess([out], t, min_score=0.5).class_ids.tolist() == [1, 2]
    assert det.postprocess([out], t, min_score=0.31).class_ids.tolist() == [1, 2]
    assert det.postprocess([out], t, min_score=0.2).class_ids.tolist() == [0, 1, 2]
    none = det.postprocess([out], t, min_score=0.9)
    assert none.boxes.shape == (0, 4)
    assert none.scores.shape == (0,)
    assert none.class_ids.shape == (0,)


def test_yolo_label_count_mismatch_raises(wide: Transform) -> None:
    t = wide
    out = yolo_output([(0.0, 160.0, 10.0, 170.0)], [[0.9, 0.1, 0.0]])
    det = Yolo(FakeSession(), letterbox_spec(), LABELS[:2])
    with pytest.raises(ValueError, match="3 classes but 2 labels"):
        det.postprocess([out], t, min_score=0.5)


# --- preprocess ---------------------------------------------------------------------------


def spec(resize: str, width: int = 320, height: int = 320, **kw: object) -> InputSpec:
    return InputSpec.model_validate({"width": width, "height": height, "resize": resize, **kw})


def test_letterbox_pads_evenly_with_grey_114() -> None:
    image = np.full((100, 200, 3), 200, np.uint8)  # wide: 320 x 160 content, 80 px bands
    tensor, t = preprocess(image, spec("letterbox"))
    assert tensor.shape == (3, 320, 320)
    assert tensor.dtype == np.float32
    assert t == Transform(1.6, 1.6, 0.0, 80.0, 200, 100)
    assert (tensor[:, :80] == 114).all()
    assert (tensor[:, 240:] == 114).all()
    assert (tensor[:, 80:240] == 200).all()


def test_letterbox_padding_is_normalised_like_the_pixels() -> None:
    image = np.full((200, 100, 3), 255, np.uint8)  # tall: bands left and right
    tensor, t = preprocess(image, spec("letterbox", std=(255, 255, 255)))
    assert (t.pad_x, t.pad_y) == (80.0, 0.0)
    np.testing.assert_allclose(tensor[:, :, :80], 114 / 255, rtol=1e-6)
    np.testing.assert_allclose(tensor[:, :, 80:240], 1.0, rtol=1e-6)


def test_stretch_ignores_aspect() -> None:
    image = np.full((100, 400, 3), 50, np.uint8)
    tensor, t = preprocess(image, spec("stretch", width=416, height=208))
    assert tensor.shape == (3, 208, 416)
    assert t == Transform(416 / 400, 208 / 100, 0.0, 0.0, 400, 100)
    assert (tensor == 50).all()


def test_longest_side_zero_pads_bottom_right_after_normalising() -> None:
    image = np.full((150, 300, 3), 100, np.uint8)
    s = spec("longest-side", width=1024, height=1024, mean=(10, 20, 30), std=(2, 4, 5))
    tensor, t = preprocess(image, s)
    assert tensor.shape == (3, 1024, 1024)
    assert t == Transform(1024 / 300, 1024 / 300, 0.0, 0.0, 300, 150)
    content = tensor[:, :512, :]
    np.testing.assert_allclose(content[:, 0, 0], [45.0, 20.0, 14.0])
    assert (content == content[:, :1, :1]).all()
    assert (tensor[:, 512:] == 0).all()


def test_bgr_spec_swaps_channels() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    image[...] = (10, 20, 30)
    rgb, _ = preprocess(image, spec("stretch"))
    bgr, _ = preprocess(image, spec("stretch", color="BGR"))
    assert rgb[:, 0, 0].tolist() == [10, 20, 30]
    assert bgr[:, 0, 0].tolist() == [30, 20, 10]


@pytest.mark.parametrize(
    "s",
    [
        spec("letterbox"),
        spec("letterbox", width=256, height=384),
        spec("stretch", width=416, height=416),
        spec("longest-side", width=512, height=512),
    ],
    ids=["letterbox", "letterbox-tall-input", "stretch", "longest-side"],
)
def test_transform_maps_network_pixels_back_to_the_image(s: InputSpec) -> None:
    # A bright rectangle at known image pixels: find it in the tensor, map its box back.
    image = np.zeros((200, 300, 3), np.uint8)
    x1, y1, x2, y2 = 100, 50, 180, 130
    image[y1:y2, x1:x2] = 255
    tensor, t = preprocess(image, s)
    bright = tensor[0] > tensor[0].max() / 2
    ys, xs = np.nonzero(bright)
    net = np.asarray([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    back = t.to_image(net)[0]
    np.testing.assert_allclose(back, [x1, y1, x2, y2], atol=1.0)


def test_transform_to_image_inverts_the_forward_mapping() -> None:
    t = Transform(1.6, 1.6, 0.0, 80.0, 200, 100)
    points = np.asarray([[0, 0, 200, 100], [12.5, 33.0, 150.25, 99.0]], np.float32)
    forward = points.copy()
    forward[:, [0, 2]] = forward[:, [0, 2]] * t.scale_x + t.pad_x
    forward[:, [1, 3]] = forward[:, [1, 3]] * t.scale_y + t.pad_y
    np.testing.assert_allclose(t.to_image(forward), points, atol=1e-4)


def test_to_image_clips_boxes_to_the_image() -> None:
    t = Transform(2.0, 2.0, 0.0, 160.0, 320, 160)  # 320 x 160 letterboxed into 640 x 640
    # From the top padding band to below the image, and past the right edge.
    net = np.asarray([[600.0, 100.0, 660.0, 500.0], [-20.0, 200.0, 40.0, 220.0]], np.float32)
    np.testing.assert_array_equal(
        t.to_image(net), [[300.0, 0.0, 320.0, 160.0], [0.0, 20.0, 20.0, 30.0]]
    )
