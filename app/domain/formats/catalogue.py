"""The format catalogue: the one list of output formats, read by the HTTP routes (`format=`,
GET /v1/formats), `prelabel annotate` and `merge` (`--format` and its help), and the job API
(submission and export). A format is declared here once, with its name, the kind of result it
applies to, what it holds, where it is offered and what a batch run writes for it.

Kinds of result: `image` (boxes and masks: /v1/detect, /v1/sam/segment; batch tasks detect and
segment), `text` (entity spans: /v1/ner; batch task ner), `tokens` (/v1/tokens; batch task
tokens), `ocr` (/v1/ocr; batch task ocr), `keypoints` (/v1/keypoints; batch task keypoints).
Within a kind a name is unique.

Aliases are older names still accepted (and answered as the canonical name's output): `jsonl`
for spaCy JSONL (`spacy-jsonl`), the name `prelabel annotate --task ner` used before the
catalogue. The writers: `render.py` (one HTTP document) and `app/batch/export.py` (a batch
folder) both build from the same per-format functions of this package (`coco.py`, `yolo.py`,
`voc.py`, `text.py`, `labelstudio.py` `image_task` / `text_task`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.errors import ValidationFailed

Kind = Literal["image", "text", "tokens", "ocr", "keypoints"]
Surface = Literal["http", "batch"]
KINDS: tuple[Kind, ...] = ("image", "text", "tokens", "ocr", "keypoints")


@dataclass(frozen=True)
class Format:
    """One format of one kind. `http`: accepted by `format=` on that kind's routes. `files`:
    what `prelabel annotate` / `merge` and a job's export write for it (paths relative to the
    output folder), None when batch runs do not offer it."""

    name: str
    kind: Kind
    description: str
    files: str | None = None
    http: bool = True
    aliases: tuple[str, ...] = ()


CATALOGUE: tuple[Format, ...] = (
    # -- image: boxes (detect) and masks (segment) ----------------------------------------------
    Format(
        "coco",
        "image",
        "COCO dataset JSON: images, categories, annotations (bbox xywh, RLE masks)",
        files="annotations.json",
    ),
    Format(
        "coco-results",
        "image",
        "COCO results file (COCOeval / COCO.loadRes): bbox, score, RLE",
        files="results.json",
    ),
    Format(
        "yolo",
        "image",
        "YOLO label file: `class cx cy w h` normalised (segment rows for masks)",
        files="classes.txt, labels/<image path>.txt",
    ),
    Format("voc", "image", "Pascal VOC XML for the image", files="Annotations/<image path>.xml"),
    Format(
        "labelstudio",
        "image",
        "Label Studio task with a prediction (rectanglelabels, brushlabels)",
        files="tasks.json",
    ),
    Format(
        "jsonl",
        "image",
        'JSON Lines, a line per image: {"key", "file_name", "width", "height", "objects"} '
        "(boxes x1 y1 x2 y2 pixels, RLE masks)",
        files="predictions.jsonl",
        http=False,  # the checkpoint's own records: a batch export, not a per-request document
    ),
    # -- text: entity spans (ner) ---------------------------------------------------------------
    Format(
        "labelstudio", "text", "Label Studio tasks with predictions (labels)", files="tasks.json"
    ),
    Format(
        "spacy-jsonl",
        "text",
        'JSON Lines: {"text", "spans": [{"start", "end", "label"}]}',
        files="predictions.jsonl",
        aliases=("jsonl",),
    ),
    Format(
        "conll",
        "text",
        "CoNLL BIO: token<TAB>tag, a blank line between texts",
        files="predictions.conll",
    ),
    # -- tokens (/v1/tokens) ----------------------------------------------------------------------
    Format(
        "conllu",
        "tokens",
        "CoNLL-U: ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC, one block a sentence",
        files="predictions.conllu",
    ),
    Format(
        "labelstudio",
        "tokens",
        "Label Studio tasks with predictions: a `labels` region per token, its UPOS",
        files="tasks.json",
    ),
    # -- ocr (/v1/ocr) ------------------------------------------------------------------------
    Format(
        "labelstudio",
        "ocr",
        "Label Studio task: per line a polygon region, its transcription (textarea) and an "
        "optional label",
        files="tasks.json",
    ),
    Format(
        "jsonl",
        "ocr",
        'One JSON object: {"file_name", "width", "height", "lines": [...]}, a line of text',
        files="predictions.jsonl",  # batch: one such line per image
    ),
    # -- keypoints (/v1/keypoints) ------------------------------------------------------------
    Format(
        "coco",
        "keypoints",
        "COCO keypoints dataset (keypoints [x, y, v]*K, num_keypoints, category skeleton)",
        files="annotations.json",
    ),
    Format(
        "coco-results",
        "keypoints",
        "COCO keypoint results list (COCOeval iouType='keypoints')",
        files="results.json",
    ),
    Format(
        "yolo",
        "keypoints",
        "YOLO pose rows: class cx cy w h (x y v)*K, normalised",
        files="classes.txt, labels/<image path>.txt",
    ),
    Format(
        "labelstudio",
        "keypoints",
        "Label Studio task: rectanglelabels per instance, keypointlabels children",
        files="tasks.json",
    ),
)


TASK_KINDS: dict[str, Kind] = {
    "detect": "image",
    "segment": "image",
    "ner": "text",
    "tokens": "tokens",
    "ocr": "ocr",
    "keypoints": "keypoints",
}


def kind_of_task(task: str) -> Kind:
    """The kind of result a batch task (detect, segment, ner, tokens, ocr, keypoints) produces;
    ValueError for another task."""
    try:
        return TASK_KINDS[task]
    except KeyError:
        raise ValueError(f"no batch task {task!r}; one of {sorted(TASK_KINDS)}") from None


def formats(kind: Kind, surface: Surface) -> tuple[Format, ...]:
    """The formats of `kind` offered on `surface`, in catalogue order."""
    return tuple(
        f
        for f in CATALOGUE
        if f.kind == kind and (f.http if surface == "http" else f.files is not None)
    )


def names(kind: Kind, surface: Surface) -> tuple[str, ...]:
    """Canonical names of `kind` on `surface` (aliases not included)."""
    return tuple(f.name for f in formats(kind, surface))


def described(kind: Kind, surface: Surface = "http") -> dict[str, str]:
    """name -> description (GET /v1/formats, the OpenAPI field descriptions)."""
    return {f.name: f.description for f in formats(kind, surface)}


def accepted(kinds: tuple[Kind, ...], surface: Surface) -> list[str]:
    """Every name and alias accepted for any of `kinds` (the CLI's `--format` choices)."""
    out: list[str] = []
    for kind in kinds:
        for f in formats(kind, surface):
            out += [n for n in (f.name, *f.aliases) if n not in out]
    return out


def resolve(name: str, kind: Kind, surface: Surface) -> Format:
    """The format `name` (or an alias of it) names for `kind` on `surface`; ValidationFailed
    (422 over HTTP) naming the accepted ones otherwise."""
    offered = formats(kind, surface)
    for f in offered:
        if name == f.name or name in f.aliases:
            return f
    raise ValidationFailed(f"format {name!r} is not one of {sorted(f.name for f in offered)}")
