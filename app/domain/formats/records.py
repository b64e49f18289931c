"""What the format writers take: images with objects, texts with spans.

Coordinates follow the rest of Prelabel: original-image pixels, x right, y down, origin at the
top-left corner of the top-left pixel; a pixel (x, y) spans [x, x+1) x [y, y+1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from app.geometry import BoxXYXY


@dataclass(frozen=True)
class ObjectRecord:
    """One object: a label, an optional confidence, a box [x1, y1, x2, y2] in pixels, and an
    optional instance mask [H, W] bool at the image's size (None for box-only results)."""

    label: str
    box: BoxXYXY
    score: float | None = None
    # Not compared: numpy arrays have no single truth value; compare masks explicitly.
    mask: npt.NDArray[np.bool_] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ImageRecord:
    """One image: `file_name` as the dataset refers to it (relative path or URL), size in
    pixels, and its objects."""

    file_name: str
    width: int
    height: int
    objects: tuple[ObjectRecord, ...] = ()
    image_id: int | None = None


@dataclass(frozen=True)
class SpanRecord:
    """[start, end) in code points (Python str indices) into the text."""

    start: int
    end: int
    label: str
    score: float | None = None


@dataclass(frozen=True)
class TextRecord:
    text: str
    spans: tuple[SpanRecord, ...] = ()
    text_id: str | None = None
    meta: dict[str, object] = field(default_factory=dict)
