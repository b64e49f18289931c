"""Records <-> JSON for the checkpoint. Boxes are [x1, y1, x2, y2] pixels; masks are COCO RLE
({"size": [H, W], "counts": str}, pycocotools' compressed form), decoded only at export."""

from __future__ import annotations

from typing import Any

from app.domain import masks, uncertainty
from app.domain.formats.records import ImageRecord, ObjectRecord, SpanRecord, TextRecord
from app.geometry import BoxXYXY


def object_json(label: str, box: BoxXYXY, score: float | None, rle: Any = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"label": label, "box": [float(v) for v in box], "score": score}
    obj["uncertainty"] = uncertainty.of_score(score)  # app/domain/uncertainty.py
    if rle is not None:
        obj["mask"] = rle
    return obj


def image_json(file_name: str, width: int, height: int, objects: list[dict[str, Any]]) -> Any:
    scores = [o["score"] for o in objects if o.get("score") is not None]
    u = uncertainty.of_image(scores)  # 1 - the best score; 1.0 with no object
    doc = {"file_name": file_name, "width": width, "height": height, "objects": objects}
    return {**doc, "uncertainty": u}


def image_record(doc: dict[str, Any]) -> ImageRecord:
    objects = tuple(
        ObjectRecord(
            str(o["label"]),
            (float(o["box"][0]), float(o["box"][1]), float(o["box"][2]), float(o["box"][3])),
            None if o.get("score") is None else float(o["score"]),
            masks.decode(o["mask"]) if o.get("mask") is not None else None,
        )
        for o in doc["objects"]
    )
    return ImageRecord(str(doc["file_name"]), int(doc["width"]), int(doc["height"]), objects)


def text_json(text_id: str, text: str, spans: list[tuple[int, int, str, float | None]]) -> Any:
    out: list[dict[str, Any]] = [
        {"start": s, "end": e, "label": lab, "score": sc} for s, e, lab, sc in spans
    ]
    for o in out:  # a span without a score (spaCy) gets no uncertainty key, as before
        if o["score"] is not None:
            o["uncertainty"] = uncertainty.of_score(o["score"])
    u = uncertainty.of_text([o.get("uncertainty") for o in out])  # null: no span has a score
    return {"text_id": text_id, "text": text, "spans": out, "uncertainty": u}


def text_record(doc: dict[str, Any]) -> TextRecord:
    spans = tuple(
        SpanRecord(int(s["start"]), int(s["end"]), str(s["label"]), s.get("score"))
        for s in doc["spans"]
    )
    return TextRecord(str(doc["text"]), spans, str(doc["text_id"]))
