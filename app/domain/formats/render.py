"""One HTTP document in a named format, for `format=` on /v1/detect, /v1/sam/segment and
/v1/ner. The names come from the catalogue (`catalogue.py`); the documents from the same
per-format writers the batch export uses (`app/batch/export.py`). Returns the document as text
with its media type."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from app.domain.formats.catalogue import described, resolve
from app.domain.formats.coco import to_coco, to_coco_results
from app.domain.formats.labelstudio import image_task, text_task
from app.domain.formats.records import ImageRecord, TextRecord
from app.domain.formats.text import to_conll, to_spacy_jsonl
from app.domain.formats.voc import to_voc
from app.domain.formats.yolo import to_yolo
from app.errors import ValidationFailed

# name -> description, for the routes and GET /v1/formats (read from the catalogue).
IMAGE_FORMATS = described("image")
TEXT_FORMATS = described("text")


@dataclass(frozen=True)
class Rendered:
    body: str
    media_type: str


def _json(doc: object) -> Rendered:
    return Rendered(json.dumps(doc, ensure_ascii=False), "application/json")


def check(fmt: str, known: dict[str, str]) -> None:
    """`fmt` is a key of `known` (a `described(kind)` table), else ValidationFailed (422).
    Prefer `catalogue.resolve`, which also takes a format's older names."""
    if fmt not in known:
        raise ValidationFailed(f"format {fmt!r} is not one of {sorted(known)}")


def render_image(
    image: ImageRecord, fmt: str, classes: Sequence[str], model_version: str
) -> Rendered:
    """`classes`: the category / class list (COCO ids and YOLO indices follow its order)."""
    name = resolve(fmt, "image", "http").name
    masked = any(o.mask is not None for o in image.objects)
    if name == "coco":
        return _json(to_coco([image], classes, "rle" if masked else "none"))
    if name == "coco-results":
        return _json(to_coco_results([image], classes))
    if name == "yolo":
        return Rendered(to_yolo(image, classes, segmentation=masked), "text/plain")
    if name == "voc":
        try:
            return Rendered(to_voc(image), "application/xml")
        except ValueError as e:  # a file name or label XML cannot hold (NUL, control chars)
            raise ValidationFailed(str(e)) from e
    return _json(image_task(image, model_version, masked))


def render_texts(texts: Sequence[TextRecord], fmt: str, model_version: str) -> Rendered:
    name = resolve(fmt, "text", "http").name
    if name == "spacy-jsonl":
        return Rendered(to_spacy_jsonl(texts), "application/jsonl")
    if name == "conll":
        return Rendered(to_conll(texts), "text/plain")
    return _json([text_task(t, model_version) for t in texts])
