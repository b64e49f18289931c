"""Label Studio prediction results (the `result` list of a prediction), predictions, and tasks
with predictions for import as pre-annotations.

Image regions are in percent of the original image size: x = x_px / width * 100, y = y_px /
height * 100 (origin at the top-left corner, pixel edges as in `records`), with
`original_width` / `original_height` set and no rotation. Text regions are [start, end)
code-point offsets into the task text, which is what Label Studio stores for `<Text>`.

Every builder takes an optional `LabelMap` (model class -> config label, or None; in practice
`app.domain.labelstudio.config.LabelMap`, named here by its call shape so that this format
package does not import the Label Studio service package above it): an object whose label maps
to None is left out,
so a result never names a label the labeling config lacks. Result ids are deterministic
(a hash of from_name, kind and index) so the same input exports the same document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from app.domain.formats.ls_brush import encode_brush
from app.domain.formats.records import ImageRecord, ObjectRecord, TextRecord
from app.domain.masks import polygons

Result = dict[str, Any]
LabelMap = Callable[[str], str | None]


def region_id(from_name: str, kind: str, index: int | str) -> str:
    """A 10-character id, stable for (from_name, kind, index) and safe in CSS selectors."""
    return hashlib.sha1(f"{from_name}/{kind}/{index}".encode()).hexdigest()[:10]


def pixels_to_percent(x: float, y: float, width: int, height: int) -> tuple[float, float]:
    """A point in pixels -> percent of the image size."""
    return x / width * 100.0, y / height * 100.0


def percent_to_pixels(x: float, y: float, width: int, height: int) -> tuple[float, float]:
    """A point in percent of the image size (as Label Studio sends clicks) -> pixels."""
    return x / 100.0 * width, y / 100.0 * height


def rect_to_box(value: dict[str, Any], width: int, height: int) -> tuple[float, ...]:
    """A `rectanglelabels` value (percent, rotation 0) -> box [x1, y1, x2, y2] in pixels."""
    x1, y1 = percent_to_pixels(float(value["x"]), float(value["y"]), width, height)
    w, h = percent_to_pixels(float(value["width"]), float(value["height"]), width, height)
    return x1, y1, x1 + w, y1 + h


def _labelled(
    objects: Iterable[ObjectRecord], label_map: LabelMap | None
) -> list[tuple[ObjectRecord, str]]:
    out = []
    for obj in objects:
        label = label_map(obj.label) if label_map is not None else obj.label
        if label is not None:
            out.append((obj, label))
    return out


def _image_result(
    image: ImageRecord,
    from_name: str,
    to_name: str,
    kind: str,
    index: int | str,
    value: dict[str, Any],
    score: float | None,
) -> Result:
    r: Result = {
        "id": region_id(from_name, kind, index),
        "from_name": from_name,
        "to_name": to_name,
        "type": kind,
        "original_width": image.width,
        "original_height": image.height,
        "image_rotation": 0,
        "value": value,
    }
    if score is not None:
        r["score"] = float(score)
    return r


def rectangle_results(
    image: ImageRecord, from_name: str, to_name: str, label_map: LabelMap | None = None
) -> list[Result]:
    """One `rectanglelabels` result per object; boxes are clipped to the image first and
    boxes left with no area are skipped."""
    out = []
    for i, (obj, label) in enumerate(_labelled(image.objects, label_map)):
        x1, y1, x2, y2 = obj.box
        x1, x2 = (min(max(float(v), 0.0), image.width) for v in (x1, x2))
        y1, y2 = (min(max(float(v), 0.0), image.height) for v in (y1, y2))
        if x2 <= x1 or y2 <= y1:
            continue
        x, y = pixels_to_percent(x1, y1, image.width, image.height)
        w, h = pixels_to_percent(x2 - x1, y2 - y1, image.width, image.height)
        value = {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}
        out.append(_image_result(image, from_name, to_name, "rectanglelabels", i, value, obj.score))
    return out


def brush_results(
    image: ImageRecord, from_name: str, to_name: str, label_map: LabelMap | None = None
) -> list[Result]:
    """One `brushlabels` result (Label Studio brush RLE) per object with a mask; objects
    without one are skipped. Raises ValueError when a mask is not [height, width]."""
    out = []
    for i, (obj, label) in enumerate(_labelled(image.objects, label_map)):
        if obj.mask is None:
            continue
        _check_mask(image, obj)
        value = {"format": "rle", "rle": encode_brush(obj.mask), "brushlabels": [label]}
        out.append(_image_result(image, from_name, to_name, "brushlabels", i, value, obj.score))
    return out


def polygon_results(
    image: ImageRecord,
    from_name: str,
    to_name: str,
    label_map: LabelMap | None = None,
    epsilon: float = 1.0,
) -> list[Result]:
    """`polygonlabels` results from each object's mask (`app.domain.masks.polygons`: outer
    contours, simplified at `epsilon` px). A mask in several pieces gives one result per
    piece (a Label Studio polygon is one closed ring); holes are dropped. Objects without a
    mask are skipped."""
    out = []
    for i, (obj, label) in enumerate(_labelled(image.objects, label_map)):
        if obj.mask is None:
            continue
        _check_mask(image, obj)
        for j, flat in enumerate(polygons(obj.mask, epsilon)):
            points = [
                list(pixels_to_percent(flat[k], flat[k + 1], image.width, image.height))
                for k in range(0, len(flat), 2)
            ]
            value = {"points": points, "closed": True, "polygonlabels": [label]}
            out.append(
                _image_result(
                    image, from_name, to_name, "polygonlabels", f"{i}.{j}", value, obj.score
                )
            )
    return out


def _check_mask(image: ImageRecord, obj: ObjectRecord) -> None:
    assert obj.mask is not None
    if obj.mask.shape != (image.height, image.width):
        raise ValueError(
            f"mask shape {obj.mask.shape} != image (height, width) {(image.height, image.width)}"
        )


def text_label_results(
    text: TextRecord, from_name: str, to_name: str, label_map: LabelMap | None = None
) -> list[Result]:
    """One `labels` result per span: value {start, end, text, labels} with code-point offsets.
    Raises ValueError for a span outside the text."""
    out: list[Result] = []
    for i, span in enumerate(text.spans):
        label = label_map(span.label) if label_map is not None else span.label
        if label is None:
            continue
        if not 0 <= span.start < span.end <= len(text.text):
            raise ValueError(
                f"span [{span.start}, {span.end}) outside a text of {len(text.text)} characters"
            )
        r: Result = {
            "id": region_id(from_name, "labels", i),
            "from_name": from_name,
            "to_name": to_name,
            "type": "labels",
            "value": {
                "start": span.start,
                "end": span.end,
                "text": text.text[span.start : span.end],
                "labels": [label],
            },
        }
        if span.score is not None:
            r["score"] = float(span.score)
        out.append(r)
    return out


def prediction(
    results: Sequence[Result], score: float | None, model_version: str
) -> dict[str, Any]:
    """A prediction: {"result", "score", "model_version"}. `score` None means the mean of
    the results' scores (None when none has one), which Label Studio sorts and filters by."""
    if score is None:
        scores = [float(r["score"]) for r in results if r.get("score") is not None]
        score = sum(scores) / len(scores) if scores else None
    return {"result": list(results), "score": score, "model_version": model_version}


def task_with_predictions(
    image_url: str,
    predictions: Sequence[dict[str, Any]],
    data_key: str = "image",
    extra_data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A task for Label Studio's import: {"data": {data_key: image_url, ...}, "predictions"}.

    `data_key` is the object tag's value without "$" (`ObjectTag.data_key`). For a `<Text>`
    object pass the text itself as `image_url` (and its key, e.g. "text")."""
    return {"data": {**(extra_data or {}), data_key: image_url}, "predictions": list(predictions)}


def image_task(image: ImageRecord, model_version: str, masks: bool) -> dict[str, Any]:
    """The Label Studio import task for one image (the `labelstudio` image format, over HTTP and
    in batch): `rectanglelabels` from "label" to "image", plus `brushlabels` from "brush" when
    `masks` (the run or response carries masks), in one prediction."""
    results = rectangle_results(image, "label", "image")
    if masks:
        results += brush_results(image, "brush", "image")
    return task_with_predictions(image.file_name, [prediction(results, None, model_version)])


def text_task(text: TextRecord, model_version: str) -> dict[str, Any]:
    """The Label Studio import task for one text (the `labelstudio` text format): data
    {"text", and "id" when the text has one}, `labels` from "label" to "text"."""
    return task_with_predictions(
        text.text,
        [prediction(text_label_results(text, "label", "text"), None, model_version)],
        data_key="text",
        extra_data=None if text.text_id is None else {"id": text.text_id},
    )
