"""SAM prompts -> the decoder's point arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.errors import ValidationFailed
from app.geometry import BoxXYXY
from app.inference.preprocess import F32


@dataclass(frozen=True)
class Point:
    """A click at (x, y) image pixels; positive = on the object, negative = not on it."""

    x: float
    y: float
    positive: bool = True


@dataclass(frozen=True)
class Prompt:
    """Clicks and/or a box [x1, y1, x2, y2] (image pixels)."""

    points: tuple[Point, ...] = ()
    box: BoxXYXY | None = None


def to_arrays(prompt: Prompt, width: int, height: int, max_points: int) -> tuple[F32, F32]:
    """Prompt -> (coords [N,2] float32 pixels, labels [N] float32) in SAM's encoding: 1/0 for
    positive/negative clicks, 2/3 for box corners; with no box, a padding point labelled -1 is
    appended, as segment-anything's ONNX export requires."""
    if not prompt.points and prompt.box is None:
        raise ValidationFailed("give at least one point or a box")
    if len(prompt.points) > max_points:
        raise ValidationFailed(f"{len(prompt.points)} points; at most {max_points} are allowed")
    coords: list[Sequence[float]] = []
    labels: list[float] = []
    for p in prompt.points:
        _inside(p.x, p.y, width, height)
        coords.append((p.x, p.y))
        labels.append(1.0 if p.positive else 0.0)
    if prompt.box is not None:
        x1, y1, x2, y2 = prompt.box
        if not (x2 > x1 and y2 > y1):
            raise ValidationFailed("box must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1")
        _inside(x1, y1, width, height)
        _inside(x2, y2, width, height)
        coords += [(x1, y1), (x2, y2)]
        labels += [2.0, 3.0]
    else:
        coords.append((0.0, 0.0))
        labels.append(-1.0)
    return np.asarray(coords, np.float32), np.asarray(labels, np.float32)


def _inside(x: float, y: float, width: int, height: int) -> None:
    if not (0 <= x <= width and 0 <= y <= height):
        raise ValidationFailed(f"point ({x}, {y}) is outside the {width}x{height} image")
