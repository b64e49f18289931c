"""Records <-> JSON for the checkpoint. Boxes are [x1, y1, x2, y2] pixels; masks are COCO RLE
({"size": [H, W], "counts": str}, pycocotools' compressed form), decoded only at export."""

from __future__ import annotations

from typing import Any

from app.domain import masks
from app.domain.formats.records import ImageRecord, ObjectRecord, SpanRecord, TextRecord


def object_json(
    label: str, box: tuple[float, float, float, float], score: float | None, rle: Any = None
) -> dict[str, Any]:
    obj: dict[str, Any] = {"label": label, "box": [float(v) for v in box], "score": score}
    if rle is not None:
        obj["mask"] = rle
    return obj


def image_json(file_name: str, width: int, height: int, objects: list[dict[str, Any]]) -> Any:
    return {"file_name": file_name, "width": width, "height": height, "objects": objects}


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
    return {
        "text_id": text_id,
        "text": text,
        "spans": [{"start": s, "end": e, "label": lab, "score": sc} for s, e, lab, sc in spans],
    }


def text_record(doc: dict[str, Any]) -> TextRecord:
    spans = tuple(
        SpanRecord(int(s["start"]), int(s["end"]), str(s["label"]), s.get("score"))
        for s in doc["spans"]
    )
    return TextRecord(str(doc["text"]), spans, str(doc["text_id"]))
