"""The batch export of the keypoints, ocr and tokens tasks (the catalogue's `files` for those
kinds), from checkpoint records (`serial_kinds.py`) in key order, by the same writers as the
HTTP `format=` answers:

- keypoints: coco -> annotations.json (one category: run.json's class, `keypoint_names`,
  `skeleton`); coco-results -> results.json (image ids as in annotations.json); yolo ->
  classes.txt + labels/<image path>.txt (pose rows); labelstudio -> tasks.json. A keypoint
  scoring under KEYPOINT_THRESHOLD is not labelled (v = 0), as /v1/keypoints' default.
- ocr: labelstudio -> tasks.json (a polygon + textarea region per line); jsonl ->
  predictions.jsonl (a line per image, /v1/ocr `format=jsonl`'s).
- tokens: conllu -> predictions.conllu (sent_id `<text id>-<sentence>`); labelstudio ->
  tasks.json (a `labels` region per token, `data.id` the text's key).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from app.batch.files import relative, write_atomic
from app.batch.serial_kinds import pose_instances, text_lines, token_list
from app.domain.formats.conllu import pos_task, to_conllu
from app.domain.formats.keypoints import (
    keypoint_task,
    to_coco_keypoint_results,
    to_coco_keypoints,
    to_yolo_pose,
)
from app.domain.formats.ocr import ocr_jsonl, ocr_task
from app.domain.formats.yolo import classes_txt

KIND_TASKS = frozenset({"keypoints", "ocr", "tokens"})
KEYPOINT_THRESHOLD = 0.3


def export_kind(
    dest: Path, fmt: str, task: str, docs: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]
) -> list[Path]:
    """Write `docs` (records in key order) as `fmt` (a canonical name) of `task` under `dest`."""
    version = str(meta["model_version"])
    if task == "tokens":
        return _tokens(dest, fmt, docs, version)
    if task == "ocr":
        return _ocr(dest, fmt, docs, version)
    return _keypoints(dest, fmt, docs, meta, version)


def _json(path: Path, doc: Any) -> Path:
    return write_atomic(path, json.dumps(doc, ensure_ascii=False))


def _keypoints(
    dest: Path, fmt: str, docs: Sequence[Mapping[str, Any]], meta: Mapping[str, Any], version: str
) -> list[Path]:
    classes = [str(c) for c in meta.get("classes") or ["person"]]
    t = KEYPOINT_THRESHOLD
    images = [
        (str(d["file_name"]), int(d["width"]), int(d["height"]), pose_instances(d)) for d in docs
    ]
    if fmt == "coco":
        names = [str(n) for n in meta["keypoint_names"]]
        skeleton = [(int(a), int(b)) for a, b in meta["skeleton"]]
        doc = to_coco_keypoints(images, classes[0], names, skeleton, t)
        return [_json(dest / "annotations.json", doc)]
    if fmt == "coco-results":
        return [_json(dest / "results.json", to_coco_keypoint_results([i[3] for i in images]))]
    if fmt == "yolo":
        out = [write_atomic(dest / "classes.txt", classes_txt(classes[:1]))]
        for name, w, h, insts in images:
            path = dest / "labels" / relative(name, ".txt")
            out.append(write_atomic(path, to_yolo_pose(insts, w, h, t)))
        return out
    tasks = [keypoint_task(name, insts, w, h, version, t) for name, w, h, insts in images]
    return [_json(dest / "tasks.json", tasks)]


def _ocr(dest: Path, fmt: str, docs: Sequence[Mapping[str, Any]], version: str) -> list[Path]:
    images = [(str(d["file_name"]), int(d["width"]), int(d["height"]), text_lines(d)) for d in docs]
    if fmt == "jsonl":
        text = "".join(ocr_jsonl(name, w, h, lines) for name, w, h, lines in images)
        return [write_atomic(dest / "predictions.jsonl", text)]
    tasks = [ocr_task(name, w, h, lines, version) for name, w, h, lines in images]
    return [_json(dest / "tasks.json", tasks)]


def _tokens(dest: Path, fmt: str, docs: Sequence[Mapping[str, Any]], version: str) -> list[Path]:
    texts = [(str(d["text"]), token_list(d)) for d in docs]
    ids = [str(d["text_id"]) for d in docs]
    if fmt == "conllu":
        return [write_atomic(dest / "predictions.conllu", to_conllu(texts, ids))]
    tasks = [
        pos_task(text, toks, version, tid) for (text, toks), tid in zip(texts, ids, strict=True)
    ]
    return [_json(dest / "tasks.json", tasks)]
