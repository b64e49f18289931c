"""One place that turns results into a named format, for `format=` on the HTTP routes (and the
batch CLI later). Returns the document as text with its media type."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from app.domain.formats.coco import to_coco, to_coco_results
from app.domain.formats.labelstudio import (
    brush_results,
    prediction,
    rectangle_results,
    task_with_predictions,
    text_label_results,
)
from app.domain.formats.records import ImageRecord, TextRecord
from app.domain.formats.text import to_conll, to_spacy_jsonl
from app.domain.formats.voc import to_voc
from app.domain.formats.yolo import to_yolo
from app.errors import ValidationFailed

IMAGE_FORMATS = {
    "coco": "COCO dataset JSON: images, categories, annotations (bbox xywh, RLE masks)",
    "coco-results": "COCO results file (COCOeval / COCO.loadRes): bbox, score, RLE",
    "yolo": "YOLO label file: `class cx cy w h` normalised (segment rows for masks)",
    "voc": "Pascal VOC XML for the image",
    "labelstudio": "Label Studio task with a prediction (rectanglelabels, brushlabels)",
}
TEXT_FORMATS = {
    "labelstudio": "Label Studio tasks with predictions (labels)",
    "spacy-jsonl": 'JSON Lines: {"text", "spans": [{"start", "end", "label"}]}',
    "conll": "CoNLL BIO: token<TAB>tag, a blank line between texts",
}


@dataclass(frozen=True)
class Rendered:
    body: str
    media_type: str


def _json(doc: object) -> Rendered:
    return Rendered(json.dumps(doc, ensure_ascii=False), "application/json")


def check(fmt: str, known: dict[str, str]) -> None:
    if fmt not in known:
        raise ValidationFailed(f"format {fmt!r} is not one of {sorted(known)}")


def render_image(
    image: ImageRecord, fmt: str, classes: Sequence[str], model_version: str
) -> Rendered:
    """`classes`: the category / class list (COCO ids and YOLO indices follow its order)."""
    check(fmt, IMAGE_FORMATS)
    masked = any(o.mask is not None for o in image.objects)
    if fmt == "coco":
        return _json(to_coco([image], classes, "rle" if masked else "none"))
    if fmt == "coco-results":
        return _json(to_coco_results([image], classes))
    if fmt == "yolo":
        return Rendered(to_yolo(image, classes, segmentation=masked), "text/plain")
    if fmt == "voc":
        try:
            return Rendered(to_voc(image), "application/xml")
        except ValueError as e:  # a file name or label XML cannot hold (NUL, control chars)
            raise ValidationFailed(str(e)) from e
    results = rectangle_results(image, "label", "image")
    if masked:
        results += brush_results(image, "brush", "image")
    return _json(task_with_predictions(image.file_name, [prediction(results, None, model_version)]))


def render_texts(texts: Sequence[TextRecord], fmt: str, model_version: str) -> Rendered:
    check(fmt, TEXT_FORMATS)
    if fmt == "spacy-jsonl":
        return Rendered(to_spacy_jsonl(texts), "application/jsonl")
    if fmt == "conll":
        return Rendered(to_conll(texts), "text/plain")
    tasks = [
        task_with_predictions(
            t.text,
            [prediction(text_label_results(t, "label", "text"), None, model_version)],
            data_key="text",
        )
        for t in texts
    ]
    return _json(tasks)
