"""select(): per-class NMS on XYXY boxes, thresholds, class filter and ordering."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.domain.boxes import Detection, select
from app.inference.detectors import Candidates

LABELS = ("person", "car", "dog")
Box = tuple[float, float, float, float]


def cands(rows: Sequence[tuple[Box, float, int]]) -> Candidates:
    """[(xyxy box, score, class id), ...] -> Candidates."""
    return Candidates(
        np.asarray([r[0] for r in rows], np.float32).reshape(-1, 4),
        np.asarray([r[1] for r in rows], np.float32),
        np.asarray([r[2] for r in rows], np.int64),
    )


def run(
    c: Candidates,
    *,
    score: float = 0.25,
    iou: float = 0.5,
    top: int = 100,
    classes: frozenset[str] | None = None,
) -> list[Detection]:
    return select(c, LABELS, score, iou, top, classes)


# IoU exactly 0.3: A is 8x10, B is 5x10, they share a 3x10 strip; union = 80 + 50 - 30 = 100.
# Placed away from the origin, so reading these XYXY boxes as XYWH would make them large and
# overlap by ~0.8 instead.
A: Box = (100.0, 100.0, 108.0, 110.0)
B: Box = (105.0, 100.0, 110.0, 110.0)


def test_overlapping_boxes_of_one_class_keep_the_best() -> None:
    got = run(cands([((10, 10, 50, 50), 0.6, 0), ((12, 12, 52, 52), 0.9, 0)]))
    assert got == [Detection("person", 0.9, (12.0, 12.0, 52.0, 52.0))]


def test_overlapping_boxes_of_different_classes_are_both_kept() -> None:
    got = run(cands([((10, 10, 50, 50), 0.6, 0), ((10, 10, 50, 50), 0.9, 1)]))
    assert got == [
        Detection("car", 0.9, (10.0, 10.0, 50.0, 50.0)),
        Detection("person", 0.6, (10.0, 10.0, 50.0, 50.0)),
    ]


def test_iou_is_computed_on_xyxy_boxes() -> None:
    c = cands([(A, 0.9, 0), (B, 0.8, 0)])
    kept = run(c, iou=0.5)  # 0.3 <= 0.5: both stay
    assert [d.box for d in kept] == [A, B]
    dropped = run(c, iou=0.2)  # 0.3 > 0.2: the weaker one goes
    assert [d.box for d in dropped] == [A]


def test_subpixel_boxes_are_not_rounded_to_integers() -> None:
    # IoU 1/3 as floats; truncated to int rects both would be (0, 0, 1, 1), IoU 1.
    c = cands([((0.0, 0.0, 1.0, 1.0), 0.9, 0), ((0.5, 0.0, 1.5, 1.0), 0.8, 0)])
    assert len(run(c, iou=0.5)) == 2
    assert len(run(c, iou=0.3)) == 1


def test_scores_below_threshold_are_dropped() -> None:
    c = cands([((0, 0, 10, 10), 0.2, 0), ((20, 0, 30, 10), 0.6, 1), ((40, 0, 50, 10), 0.4, 2)])
    assert [d.label for d in run(c, score=0.5)] == ["car"]
    assert [d.label for d in run(c, score=0.3)] == ["car", "dog"]


def test_score_equal_to_threshold_is_kept() -> None:
    assert len(run(cands([((0, 0, 10, 10), 0.5, 0)]), score=0.5)) == 1


def test_max_detections_keeps_the_best_highest_first() -> None:
    scores = [0.3, 0.9, 0.5, 0.7, 0.8]
    c = cands([((30.0 * i, 0, 30.0 * i + 20, 20), s, i % 3) for i, s in enumerate(scores)])
    got = run(c, top=3)
    assert [d.score for d in got] == [0.9, 0.8, 0.7]
    assert [d.box[0] for d in got] == [30.0, 120.0, 90.0]
    assert [d.label for d in got] == ["car", "car", "person"]
    assert [d.score for d in run(c)] == sorted(scores, reverse=True)


def test_classes_filter_keeps_only_those_labels() -> None:
    c = cands([((0, 0, 10, 10), 0.9, 0), ((20, 0, 30, 10), 0.8, 1), ((40, 0, 50, 10), 0.7, 2)])
    assert [d.label for d in run(c, classes=frozenset({"car"}))] == ["car"]
    assert [d.label for d in run(c, classes=frozenset({"dog", "person"}))] == ["person", "dog"]
    assert run(c, classes=frozenset()) == []


def test_filtered_class_does_not_suppress_a_wanted_one() -> None:
    # Same class id would suppress; here the excluded higher-scoring box is another class
    # entirely, so it must neither appear nor affect the wanted box.
    c = cands([((0, 0, 10, 10), 0.9, 0), ((0, 0, 10, 10), 0.5, 1)])
    assert run(c, classes=frozenset({"car"})) == [Detection("car", 0.5, (0.0, 0.0, 10.0, 10.0))]


def test_empty_input_gives_no_detections() -> None:
    assert run(Candidates.empty()) == []
    assert run(Candidates.empty(), classes=frozenset({"car"})) == []


def test_all_below_threshold_gives_no_detections() -> None:
    assert run(cands([((0, 0, 10, 10), 0.1, 0)]), score=0.5) == []
