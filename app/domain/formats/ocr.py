"""OCR results in Label Studio's OCR setup and as JSON Lines.

Label Studio (its "Optical Character Recognition" template): an `<Image name="image">`, a
`<Polygon name="poly">` and/or `<Rectangle name="bbox">`, an optional
`<Labels name="label">`, and `<TextArea name="transcription" perRegion="true">`. Each text line
is one region: a `polygon` (or `rectangle`) result, a `textarea` result with the same region id
and `value.text = [text]`, and, when a label is given, a `labels` result with that id too.
Points are percent of the image size (`app.domain.formats.labelstudio`). A rectangle is the
line's rotated box: `x, y` its polygon's first (top-left) corner, `width`, `height` its
sides, `rotation` degrees clockwise about that corner, as Label Studio stores a rotated
rectangle.

JSONL: one object per image, `{"file_name", "width", "height", "lines": [{"polygon", "text",
"score"}]}` with pixel polygons, ending in a newline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from app.domain.formats.labelstudio import pixels_to_percent, region_id

Result = dict[str, Any]


class LineLike(Protocol):
    @property
    def polygon(self) -> tuple[tuple[float, float], ...]: ...
    @property
    def text(self) -> str: ...
    @property
    def score(self) -> float: ...


def ocr_results(
    lines: Sequence[LineLike],
    width: int,
    height: int,
    shape: Literal["polygon", "rectangle"] = "polygon",
    label: str | None = None,
    names: tuple[str, str, str, str] = ("poly", "transcription", "label", "image"),
) -> list[Result]:
    """Results for one image. `names`: (shape tool, textarea, labels, image) control names;
    for `shape="rectangle"` pass the Rectangle's name first (the template calls it `bbox`)."""
    shape_name, text_name, label_name, image_name = names
    out: list[Result] = []
    for i, line in enumerate(lines):
        rid = region_id(shape_name, "ocr", i)
        geom = _polygon(line, width, height) if shape == "polygon" else _rect(line, width, height)
        base = {
            "id": rid,
            "to_name": image_name,
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "score": round(float(line.score), 4),
        }
        out.append({**base, "from_name": shape_name, "type": shape, "value": dict(geom)})
        out.append(
            {
                **base,
                "from_name": text_name,
                "type": "textarea",
                "value": {**geom, "text": [line.text]},
            }
        )
        if label is not None:
            value = {**geom, "labels": [label]}
            out.append({**base, "from_name": label_name, "type": "labels", "value": value})
    return out


def _polygon(line: LineLike, width: int, height: int) -> dict[str, Any]:
    points = [list(pixels_to_percent(x, y, width, height)) for x, y in line.polygon]
    return {"points": points, "closed": True}


def _rect(line: LineLike, width: int, height: int) -> dict[str, Any]:
    (x0, y0), (x1, y1), _, (x3, y3) = line.polygon[:4]
    side_w = math.hypot(x1 - x0, y1 - y0)
    side_h = math.hypot(x3 - x0, y3 - y0)
    rotation = math.degrees(math.atan2(y1 - y0, x1 - x0)) % 360.0
    x, y = pixels_to_percent(x0, y0, width, height)
    w, h = pixels_to_percent(side_w, side_h, width, height)
    return {"x": x, "y": y, "width": w, "height": h, "rotation": round(rotation, 4)}


def ocr_task(
    file_name: str,
    width: int,
    height: int,
    lines: Sequence[LineLike],
    model_version: str,
    label: str | None = None,
) -> dict[str, Any]:
    """A Label Studio task with one prediction (score: the mean line score)."""
    results = ocr_results(lines, width, height, "polygon", label)
    mean = sum(float(ln.score) for ln in lines) / len(lines) if lines else None
    prediction = {"result": results, "score": mean, "model_version": model_version}
    return {"data": {"image": file_name}, "predictions": [prediction]}


def ocr_jsonl(file_name: str, width: int, height: int, lines: Sequence[LineLike]) -> str:
    doc = {
        "file_name": file_name,
        "width": width,
        "height": height,
        "lines": [
            {"polygon": [list(p) for p in ln.polygon], "text": ln.text, "score": ln.score}
            for ln in lines
        ],
    }
    return json.dumps(doc, ensure_ascii=False) + "\n"
