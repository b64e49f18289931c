"""Write the final dataset from checkpoint records (never from memory), so a resumed or merged
run exports every finished item exactly once. Items are written in key order.

The formats, their older names and the files each writes are the catalogue's
(`app/domain/formats/catalogue.py`, `Format.files`); the documents come from the same writers as
the HTTP `format=` output. Images: coco -> annotations.json; coco-results -> results.json;
yolo -> labels/<file_name minus suffix>.txt + classes.txt; voc -> Annotations/<file_name minus
suffix>.xml; labelstudio -> tasks.json; jsonl -> predictions.jsonl ({"key", "file_name",
"width", "height", "objects"} with RLE masks). Texts: labelstudio -> tasks.json; spacy-jsonl
(older name jsonl) -> predictions.jsonl; conll -> predictions.conll. Per-image files mirror the
image's relative path, so a/x.jpg and b/x.jpg never collide. Keypoints, OCR and tokens:
`export_kinds.py`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from app.batch.export_kinds import KIND_TASKS, export_kind
from app.batch.files import relative, write_atomic
from app.batch.serial import image_record, text_record
from app.domain.formats.catalogue import kind_of_task, names, resolve
from app.domain.formats.coco import to_coco, to_coco_results
from app.domain.formats.labelstudio import image_task, text_task
from app.domain.formats.text import to_conll, to_spacy_jsonl
from app.domain.formats.voc import to_voc
from app.domain.formats.yolo import classes_txt, to_yolo
from app.errors import ValidationFailed


def formats_for(task: str) -> tuple[str, ...]:
    """The canonical format names a batch run of `task` offers (the catalogue's)."""
    return names(kind_of_task(task), "batch")


def canonical(fmt: str, task: str) -> str:
    """`fmt` (a name or an older alias) as the catalogue's name for `task`'s results; ValueError
    naming the offered ones when `task` has no such format."""
    try:
        return resolve(fmt, kind_of_task(task), "batch").name
    except ValidationFailed:
        raise ValueError(
            f"--format {fmt} is not one of {formats_for(task)} for --task {task}"
        ) from None


def export(
    dest: Path, fmt: str, task: str, meta: Mapping[str, Any], records: Mapping[str, Any]
) -> list[Path]:
    """Write `records` (key -> checkpoint record) as `fmt` under `dest`; returns the files.
    `meta` is the run's run.json: classes (model label order) and model_version."""
    fmt = canonical(fmt, task)
    keys = sorted(records)
    if task in KIND_TASKS:  # keypoints, ocr, tokens
        return export_kind(dest, fmt, task, [records[k] for k in keys], meta)
    if task == "ner":
        return _texts(dest, fmt, [records[k] for k in keys], str(meta["model_version"]))
    return _images(dest, fmt, keys, records, list(meta["classes"]), str(meta["model_version"]))


def _images(
    dest: Path,
    fmt: str,
    keys: Sequence[str],
    records: Mapping[str, Any],
    classes: list[str],
    version: str,
) -> list[Path]:
    masked = any(o.get("mask") for k in keys for o in records[k]["objects"])
    if fmt == "jsonl":
        lines = (json.dumps({"key": k, **records[k]}, ensure_ascii=False) + "\n" for k in keys)
        return [write_atomic(dest / "predictions.jsonl", "".join(lines))]
    images = [image_record(records[k]) for k in keys]
    if fmt == "coco":
        doc = to_coco(images, classes, "rle" if masked else "none")
        return [write_atomic(dest / "annotations.json", json.dumps(doc))]
    if fmt == "coco-results":
        results = to_coco_results(images, classes)
        return [write_atomic(dest / "results.json", json.dumps(results))]
    if fmt == "yolo":
        out = [write_atomic(dest / "classes.txt", classes_txt(classes))]
        for im in images:
            path = dest / "labels" / relative(im.file_name, ".txt")
            out.append(write_atomic(path, to_yolo(im, classes, segmentation=masked)))
        return out
    if fmt == "voc":
        return [
            write_atomic(dest / "Annotations" / relative(im.file_name, ".xml"), to_voc(im))
            for im in images
        ]
    tasks = [image_task(im, version, masked) for im in images]
    return [write_atomic(dest / "tasks.json", json.dumps(tasks, ensure_ascii=False))]


def _texts(dest: Path, fmt: str, docs: Sequence[Any], version: str) -> list[Path]:
    texts = [text_record(d) for d in docs]
    if fmt == "spacy-jsonl":
        return [write_atomic(dest / "predictions.jsonl", to_spacy_jsonl(texts))]
    if fmt == "conll":
        return [write_atomic(dest / "predictions.conll", to_conll(texts))]
    tasks = [text_task(t, version) for t in texts]
    return [write_atomic(dest / "tasks.json", json.dumps(tasks, ensure_ascii=False))]
