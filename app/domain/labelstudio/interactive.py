"""Interactive pre-annotation: the regions Label Studio sends in `params.context.result` when an
annotator draws a smart keypoint or rectangle, read into one SAM prompt.

Every check of `params.context.result` lives here, and every failure is a ValidationFailed (422
`validation_error`): the shape (a list of objects, at most `max_regions`), and each region's
fields. A region is Label Studio's result JSON: `type` ("keypointlabels" or
"rectanglelabels"), `original_width` / `original_height` (pixels), `value` with x, y (and
width, height for a rectangle) in percent of the image, the label list under the type's key,
and `is_positive` for keypoints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.domain.formats.labelstudio import percent_to_pixels, rect_to_box
from app.domain.prompts import Point, Prompt
from app.errors import PrelabelError, ValidationFailed

REGION_SHAPE = "params.context.result must be a list of regions (objects)"


def context_regions(
    params: Mapping[str, Any] | None, max_regions: int
) -> list[Mapping[str, Any]] | None:
    """The regions of an interactive request, or None for a batch request (no context, or
    an empty or null `result`)."""
    context = (params or {}).get("context") if isinstance(params, Mapping) else None
    regions = context.get("result") if isinstance(context, Mapping) else None
    if regions is None or regions == []:
        return None
    if not isinstance(regions, list) or not all(isinstance(r, Mapping) for r in regions):
        raise ValidationFailed(REGION_SHAPE)
    if len(regions) > max_regions:
        raise ValidationFailed(f"{len(regions)} context regions; at most {max_regions}")
    return regions


@dataclass(frozen=True)
class Clicks:
    """The prompt the regions make (pixels of the original image) and the first label named."""

    prompt: Prompt
    label: str


def clicks(regions: Sequence[Mapping[str, Any]]) -> Clicks:
    """Keypoints become clicks (`is_positive`), a rectangle becomes the box (the last one
    wins). ValidationFailed when a region is malformed."""
    points: list[Point] = []
    box: tuple[float, float, float, float] | None = None
    label = ""
    for i, r in enumerate(regions):
        try:  # regions are client JSON: any field may be missing or of any type
            value = r.get("value") or {}
            w, h = int(r.get("original_width", 0)), int(r.get("original_height", 0))
            if w <= 0 or h <= 0:
                raise ValidationFailed("context regions need original_width and original_height")
            kind = str(r.get("type", ""))
            names = value.get(kind) or []
            label = label or (str(names[0]) if names else "")
            if kind == "keypointlabels":
                x, y = percent_to_pixels(float(value["x"]), float(value["y"]), w, h)
                points.append(Point(x, y, bool(r.get("is_positive", True))))
            elif kind == "rectanglelabels":
                x1, y1, x2, y2 = rect_to_box(value, w, h)
                box = (x1, y1, x2, y2)
        except PrelabelError as e:
            raise ValidationFailed(f"context region {i}: {e.message}") from e
        except (AttributeError, LookupError, ArithmeticError, TypeError, ValueError) as e:
            raise ValidationFailed(f"context region {i} is malformed ({type(e).__name__})") from e
    return Clicks(Prompt(points=tuple(points), box=box), label)
