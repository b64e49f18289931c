"""Checkpoint records of the keypoints, ocr and tokens tasks, in the shapes of the HTTP answers
(so a run's `results.jsonl`, a job's `/results` and `/v1/keypoints`, `/v1/ocr`, `/v1/tokens`
read alike), and back into the objects the format writers take.

- keypoints (an image): `{"file_name", "width", "height", "instances": [{"label", "box",
  "score", "keypoints": [{"name", "x", "y", "score"}]}], "uncertainty"}`; boxes [x1, y1, x2,
  y2] and points in pixels of the image as stored; uncertainty 1 - the best instance score,
  1.0 with none (as for detection images).
- ocr (an image): `{"file_name", "width", "height", "lines": [{"polygon", "text", "score",
  "box_score", "rotated"}], "uncertainty"}`; polygons 4 [x, y] pixels; uncertainty the
  least sure line's 1 - score, 1.0 with no line.
- tokens (a text): `{"text_id", "text", "tokens": [{"start", "end", "text", "pos", "tag",
  "lemma", "dep", "head", "sentence", "morph"}], "uncertainty": null}` (code-point offsets;
  the tagger gives no probabilities, so no uncertainty, as for spaCy NER).

Scores are rounded as the HTTP answers round them, so in-process and `--server` records match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.domain import uncertainty
from app.domain.keypoints import Keypoint, PoseInstance
from app.domain.ocr import TextLine
from app.domain.tokens import Token

TOKEN_FIELDS = ("start", "end", "text", "pos", "tag", "lemma", "dep", "head", "sentence", "morph")


# -- keypoints --------------------------------------------------------------------------------


def instance_doc(inst: PoseInstance) -> dict[str, Any]:
    """A domain instance as /v1/keypoints answers it."""
    return {
        "label": inst.label,
        "box": [float(v) for v in inst.box],
        "score": inst.score,
        "keypoints": [
            {"name": k.name, "x": k.x, "y": k.y, "score": k.score} for k in inst.keypoints
        ],
    }


def keypoints_json(
    file_name: str, width: int, height: int, instances: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The record from instances shaped like /v1/keypoints' (domain ones via `instance_doc`)."""
    insts: list[dict[str, Any]] = [
        {
            "label": str(i["label"]),
            "box": [float(v) for v in i["box"]],
            "score": float(i["score"]),
            "keypoints": [
                {
                    "name": str(k["name"]),
                    "x": float(k["x"]),
                    "y": float(k["y"]),
                    "score": float(k["score"]),
                }
                for k in i["keypoints"]
            ],
        }
        for i in instances
    ]
    u = uncertainty.of_image([i["score"] for i in insts])
    doc = {"file_name": file_name, "width": width, "height": height, "instances": insts}
    return {**doc, "uncertainty": u}


def pose_instances(rec: Mapping[str, Any]) -> list[PoseInstance]:
    return [
        PoseInstance(
            str(i["label"]),
            (float(i["box"][0]), float(i["box"][1]), float(i["box"][2]), float(i["box"][3])),
            float(i["score"]),
            tuple(
                Keypoint(str(k["name"]), float(k["x"]), float(k["y"]), float(k["score"]))
                for k in i["keypoints"]
            ),
        )
        for i in rec["instances"]
    ]


# -- ocr --------------------------------------------------------------------------------------


def line_doc(line: TextLine) -> dict[str, Any]:
    """A domain line as /v1/ocr answers it (without words)."""
    return {
        "polygon": [[float(x), float(y)] for x, y in line.polygon],
        "text": line.text,
        "score": round(line.score, 4),
        "box_score": round(line.box_score, 4),
        "rotated": line.rotated,
    }


def ocr_json(
    file_name: str, width: int, height: int, lines: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The record from lines shaped like /v1/ocr's (domain ones via `line_doc`)."""
    out: list[dict[str, Any]] = [
        {
            "polygon": [[float(x), float(y)] for x, y in ln["polygon"]],
            "text": str(ln["text"]),
            "score": float(ln["score"]),
            "box_score": float(ln["box_score"]),
            "rotated": bool(ln["rotated"]),
        }
        for ln in lines
    ]
    u = max((1.0 - ln["score"] for ln in out), default=1.0)
    doc = {"file_name": file_name, "width": width, "height": height, "lines": out}
    return {**doc, "uncertainty": round(min(max(u, 0.0), 1.0), 6)}


def text_lines(rec: Mapping[str, Any]) -> list[TextLine]:
    return [
        TextLine(
            tuple((float(x), float(y)) for x, y in ln["polygon"]),
            str(ln["text"]),
            float(ln["score"]),
            float(ln["box_score"]),
            bool(ln["rotated"]),
        )
        for ln in rec["lines"]
    ]


# -- tokens -----------------------------------------------------------------------------------


def token_doc(t: Token) -> dict[str, Any]:
    """A domain token as /v1/tokens answers it."""
    return {f: getattr(t, f) for f in TOKEN_FIELDS}


def tokens_json(text_id: str, text: str, tokens: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The record from tokens shaped like /v1/tokens' (domain ones via `token_doc`)."""
    out = [{f: t[f] for f in TOKEN_FIELDS} for t in tokens]
    return {"text_id": text_id, "text": text, "tokens": out, "uncertainty": None}


def token_list(rec: Mapping[str, Any]) -> list[Token]:
    return [
        Token(
            int(t["start"]),
            int(t["end"]),
            str(t["text"]),
            str(t["pos"]),
            str(t["tag"]),
            str(t["lemma"]),
            str(t["dep"]),
            int(t["head"]),
            int(t["sentence"]),
            str(t["morph"]),
        )
        for t in rec["tokens"]
    ]
