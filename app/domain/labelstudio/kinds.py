"""Label Studio results for the newer kinds: people and their keypoints (MoveNet), text lines
(PP-OCR), and parts of speech (spaCy), each when its model is set in `LsModels`.

Which configs ask for what:
- keypoints: a `KeyPointLabels` on an `Image` that is neither `smart` nor `smartOnly` (a smart
  one stays interactive SAM), with a `RectangleLabels` on the same image. Each person is a
  rectangle (its label mapped through that control's labels, e.g. "person" -> "Person") and
  its keypoints with a score >= KEYPOINT_MIN are `keypointlabels` results whose `parentID` is
  the rectangle's id (the label is the keypoint's name, "nose", "left_wrist", ..., mapped
  through the KeyPointLabels' labels; names the control lacks are left out). MoveNet's persons
  replace the detector's boxes of the same label in that rectangle control.
- OCR: a `TextArea` with `perRegion="true"` on an `Image` that has a `Polygon` (preferred) or
  `Rectangle` control: one region per text line with its transcription, and with a `Labels`
  on the image, the label that "text" maps to (none when the control has no such label).
- parts of speech: a `Labels` on a `Text` whose every label is a Universal POS tag (by value
  or `predicted_values`): one `labels` span per token whose tag the control offers. The NER
  does not answer such a control.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from app.domain.formats.conllu import pos_label_results
from app.domain.formats.keypoints import keypoint_results
from app.domain.formats.ocr import ocr_results
from app.domain.keypoints import KeypointService
from app.domain.labelstudio.config import ControlTag, LabelConfig, LabelMap
from app.domain.ocr import OcrService
from app.domain.tokens import TokenService
from app.inference.batcher import Lane


class KindModels(Protocol):
    """What `kind_results` reads of `tasks.LsModels`, named by shape: tasks.py imports this
    module, so importing LsModels back would be a cycle (.importlinter)."""

    @property
    def keypoints(self) -> str: ...
    @property
    def ocr(self) -> str: ...
    @property
    def tokens(self) -> str: ...
    @property
    def aliases(self) -> Mapping[str, str] | None: ...


UPOS = frozenset(
    {"ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN"}
    | {"PUNCT", "SCONJ", "SYM", "VERB", "X"}
)
KEYPOINT_MIN = 0.3  # a keypoint below this score is not written (as formats/keypoints.py)
Result = dict[str, Any]


@dataclass(frozen=True)
class KindServices:
    ocr: OcrService | None = None
    keypoints: KeypointService | None = None
    tokens: TokenService | None = None


@dataclass(frozen=True)
class PoseControls:
    keypoints: ControlTag
    rectangles: ControlTag


@dataclass(frozen=True)
class OcrControls:
    shape: ControlTag  # Polygon or Rectangle
    text: ControlTag  # TextArea perRegion
    labels: ControlTag | None


def _on(control: ControlTag, object_name: str) -> bool:
    return object_name in control.to_names


def pose_controls(config: LabelConfig) -> list[PoseControls]:
    """Non-smart KeyPointLabels on an Image with a RectangleLabels on the same image."""
    out = []
    for kp in config.controls_for("KeyPointLabels", "Image"):
        if kp.smart or kp.smart_only:
            continue
        rects = [
            c
            for c in config.controls_for("RectangleLabels", "Image")
            if _on(c, kp.to_name) and not c.smart_only
        ]
        if rects:
            out.append(PoseControls(kp, rects[0]))
    return out


def ocr_controls(config: LabelConfig) -> list[OcrControls]:
    """Per image: a perRegion TextArea, a Polygon (else Rectangle), optional Labels."""
    out = []
    for text in config.controls_for("TextArea", "Image"):
        if not text.per_region:
            continue
        name = text.to_name
        shapes = [c for t in ("Polygon", "Rectangle") for c in config.controls_for(t, "Image")]
        shapes = [c for c in shapes if _on(c, name)]
        if not shapes:
            continue
        labels = [c for c in config.controls_for("Labels", "Image") if _on(c, name)]
        out.append(OcrControls(shapes[0], text, labels[0] if labels else None))
    return out


def is_pos(control: ControlTag) -> bool:
    """A Labels control whose every label is a UPOS tag (value or one of predicted_values)."""
    return bool(control.labels) and all(
        lab.value.upper() in UPOS or any(p.upper() in UPOS for p in lab.predicted_values)
        for lab in control.labels
    )


def _relabel(results: list[Result], kind: str, label_map: LabelMap) -> list[Result]:
    """Results of `kind` with their label mapped (dropped when the control lacks it)."""
    out = []
    for r in results:
        if r["type"] == kind:
            name = label_map(r["value"][kind][0])
            if name is None:
                continue
            r = {**r, "value": {**r["value"], kind: [name]}}
        out.append(r)
    return out


async def pose_results(
    service: KeypointService,
    model: str,
    data: bytes,
    controls: PoseControls,
    lane: Lane,
    aliases: Mapping[str, str] | None = None,
) -> list[Result]:
    """Persons and their keypoints for one image (see the module docstring)."""
    found = await service.detect(data, model, lane=lane)
    kp, rect = controls.keypoints, controls.rectangles
    results = keypoint_results(
        found.instances,
        found.width,
        found.height,
        KEYPOINT_MIN,
        rect_name=rect.name,
        kp_name=kp.name,
        to_name=kp.to_name,
    )
    rect_map = LabelMap.for_control(rect, aliases)
    kept = _relabel(results, "rectanglelabels", rect_map)
    ids = {r["id"] for r in kept if r["type"] == "rectanglelabels"}
    for r in kept:
        if r["type"] == "keypointlabels" and r.get("parentID") not in ids:
            r.pop("parentID", None)  # its person's label is not in the config
    return _relabel(kept, "keypointlabels", LabelMap.for_control(kp, aliases))


async def ocr_image_results(
    service: OcrService, model: str, data: bytes, controls: OcrControls, lane: Lane
) -> list[Result]:
    """One region per text line, with its transcription (see the module docstring)."""
    found = await service.read(data, model, lane=lane)
    label = None
    if controls.labels is not None:
        label = LabelMap.for_control(controls.labels)("text")
    shape: Literal["polygon", "rectangle"] = (
        "polygon" if controls.shape.tag == "Polygon" else "rectangle"
    )
    names = (
        controls.shape.name,
        controls.text.name,
        controls.labels.name if controls.labels is not None else "",
        controls.text.to_name,
    )
    return ocr_results(found.lines, found.width, found.height, shape, label, names)


async def pos_results(
    service: TokenService, model: str, text: str, control: ControlTag, lane: Lane
) -> list[Result]:
    """One `labels` span per token whose UPOS tag the control offers."""
    found = await service.tag([text], model, lane=lane)
    results = pos_label_results(text, found.tokens[0], control.name, control.to_name)
    return _relabel(results, "labels", LabelMap.for_control(control))


ImageOf = Callable[[str], Awaitable[bytes]]


async def kind_results(
    services: KindServices,
    models: KindModels,
    config: LabelConfig,
    image: ImageOf,
    text_of: Callable[[ControlTag], str],
    lane: Lane,
) -> tuple[list[Result], list[str]]:
    """Every keypoint, OCR and POS result `config` asks for, and the names of the images a
    model looked at (for ranking.py). `models` is the LsModels (keypoints, ocr, tokens)."""
    out: list[Result] = []
    images: list[str] = []
    if services.keypoints is not None and models.keypoints:
        for pc in pose_controls(config):
            assert pc.keypoints.object is not None
            data = await image(pc.keypoints.object.data_key)
            got = await pose_results(
                services.keypoints, models.keypoints, data, pc, lane, models.aliases
            )
            out += got
            images.append(pc.keypoints.to_name)
    if services.ocr is not None and models.ocr:
        for oc in ocr_controls(config):
            assert oc.text.object is not None
            data = await image(oc.text.object.data_key)
            out += await ocr_image_results(services.ocr, models.ocr, data, oc, lane)
            images.append(oc.text.to_name)
    if services.tokens is not None and models.tokens:
        for c in pos_text_controls(config):
            out += await pos_results(services.tokens, models.tokens, text_of(c), c, lane)
    return out, images


def pos_text_controls(config: LabelConfig) -> list[ControlTag]:
    return [
        c
        for c in config.controls_for("Labels")
        if c.object is not None and c.object.tag.lower() in ("text", "hypertext") and is_pos(c)
    ]


def _labels(result: Mapping[str, Any]) -> set[str]:
    value = result.get("value")
    got = value.get("rectanglelabels") if isinstance(value, dict) else None
    return set(got) if isinstance(got, list) else set()


def without_replaced(results: Sequence[Result], replaced: Sequence[Result]) -> list[Result]:
    """`results` less the detector boxes that MoveNet's persons (`replaced`) stand for."""
    drop = {
        (r["from_name"], lab)
        for r in replaced
        if r.get("type") == "rectanglelabels"
        for lab in _labels(r)
    }
    return [
        r
        for r in results
        if r.get("type") != "rectanglelabels"
        or not any((r.get("from_name"), lab) in drop for lab in _labels(r))
    ]
