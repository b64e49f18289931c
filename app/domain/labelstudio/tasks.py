"""One Label Studio task's pre-annotations, as Label Studio results: boxes for
`RectangleLabels`, SAM masks on those boxes for `BrushLabels` / `PolygonLabels`, spans for
`Labels` on a `Text`; persons with keypoints, OCR lines and parts of speech (kinds.py). Only
labels the config offers are written (LabelMap)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.domain.detection import DetectionService, DetectParams
from app.domain.formats.labelstudio import (
    brush_results,
    polygon_results,
    rectangle_results,
    text_label_results,
)
from app.domain.formats.records import ImageRecord, ObjectRecord, SpanRecord, TextRecord
from app.domain.labelstudio.config import ControlTag, LabelConfig, LabelMap
from app.domain.labelstudio.kinds import (
    KindServices,
    is_pos,
    kind_results,
    ocr_controls,
    pose_controls,
    without_replaced,
)
from app.domain.masks import decode
from app.domain.ner import NerService
from app.domain.prompts import Prompt
from app.domain.segmentation import SegmentationService
from app.errors import BadInput
from app.inference.batcher import Lane

IMAGE_CONTROLS = ("RectangleLabels", "BrushLabels", "PolygonLabels")
ImageOf = Callable[[str], Awaitable[bytes]]
"""A task data key ("image") -> the bytes of the image it names (fetched, cached)."""


@dataclass(frozen=True)
class LsModels:
    """Which models answer Label Studio, and how. Empty names disable that kind of result."""

    detector: str
    sam: str
    ner: str
    score_threshold: float = 0.35
    aliases: Mapping[str, str] | None = None  # model class -> config label (settings)
    keypoints: str = ""  # MoveNet for non-smart KeyPointLabels (kinds.py)
    ocr: str = ""  # PP-OCR for a perRegion TextArea on an Image
    tokens: str = ""  # spaCy parts of speech for Labels of UPOS tags on a Text


def task_data(task: Mapping[str, Any]) -> Mapping[str, Any]:
    """A task's `data` object ({} when absent or not an object: client JSON)."""
    data = task.get("data")
    return data if isinstance(data, Mapping) else {}


class TaskPredictor:
    def __init__(
        self,
        detection: DetectionService,
        segmentation: SegmentationService,
        ner: NerService,
        models: LsModels,
        kinds: KindServices | None = None,
    ) -> None:
        self.detection = detection
        self.segmentation = segmentation
        self.ner = ner
        self.models = models
        self.kinds = kinds or KindServices()

    async def results(
        self, task: Mapping[str, Any], config: LabelConfig, image: ImageOf, lane: Lane
    ) -> list[dict[str, Any]]:
        """Every result the config's controls ask for on `task`."""
        results: list[dict[str, Any]] = []
        image_controls = [c for t in IMAGE_CONTROLS for c in config.controls_for(t, "Image")]
        by_key: dict[str, list[ControlTag]] = {}
        for c in image_controls:
            assert c.object is not None
            by_key.setdefault(c.object.data_key, []).append(c)
        for key, controls in by_key.items():
            if self.models.detector:
                results += await self._image_results(await image(key), key, controls, lane)
        for c in self._ner_controls(config):
            results += await self._text_results(task, c, lane)
        extra, _ = await kind_results(
            self.kinds, self.models, config, image, lambda c: self._text(task, c), lane
        )
        return [*without_replaced(results, extra), *extra]

    def _ner_controls(self, config: LabelConfig) -> list[ControlTag]:
        """Labels on a Text the NER answers (not those of UPOS tags when POS is on)."""
        if not self.models.ner:
            return []
        pos = self.models.tokens and self.kinds.tokens is not None
        return [
            c
            for c in config.controls_for("Labels")
            if c.object is not None
            and c.object.tag.lower() in ("text", "hypertext")
            and not (pos and is_pos(c))
        ]

    def looked_at(self, config: LabelConfig) -> tuple[list[str], list[str]]:
        """What `results` runs a model on for `config`: the image objects' names (the
        `to_name` of their results) and the `Labels`-on-`Text` controls' names (ranking.py)."""
        images: list[str] = []
        if self.models.detector:
            for c in (c for t in IMAGE_CONTROLS for c in config.controls_for(t, "Image")):
                if c.to_name not in images:
                    images.append(c.to_name)
        if self.kinds.keypoints is not None and self.models.keypoints:
            images += [p.keypoints.to_name for p in pose_controls(config)]
        if self.kinds.ocr is not None and self.models.ocr:
            images += [o.text.to_name for o in ocr_controls(config)]
        texts = [c.name for c in self._ner_controls(config)]
        return list(dict.fromkeys(images)), texts

    async def _image_results(
        self, data: bytes, key: str, controls: list[ControlTag], lane: Lane
    ) -> list[dict[str, Any]]:
        m = self.models
        found = await self.detection.detect(
            data, DetectParams(model=m.detector, score_threshold=m.score_threshold, lane=lane)
        )
        maps = {c.name: LabelMap.for_control(c, m.aliases) for c in controls}
        boxes = tuple(ObjectRecord(d.label, d.box, d.score) for d in found.detections)
        masked = any(c.tag != "RectangleLabels" for c in controls) and m.sam
        objects = boxes
        if masked:  # SAM on each box that some mask control can name
            wanted = [
                o
                for o in boxes
                if any(maps[c.name](o.label) for c in controls if c.tag != "RectangleLabels")
            ]
            segs = await asyncio.gather(
                *(
                    self.segmentation.segment(Prompt(box=o.box), m.sam, image=data, lane=lane)
                    for o in wanted
                )
            )
            objects = tuple(
                ObjectRecord(o.label, o.box, o.score, decode(s.masks[0].rle))
                for o, s in zip(wanted, segs, strict=True)
            )
        out: list[dict[str, Any]] = []
        for c in controls:
            if c.tag == "RectangleLabels":
                image = ImageRecord(key, found.width, found.height, boxes)
                out += rectangle_results(image, c.name, c.to_name, maps[c.name])
            elif masked:
                image = ImageRecord(key, found.width, found.height, objects)
                build = brush_results if c.tag == "BrushLabels" else polygon_results
                out += build(image, c.name, c.to_name, maps[c.name])
        return out

    @staticmethod
    def _text(task: Mapping[str, Any], control: ControlTag) -> str:
        assert control.object is not None
        text = task_data(task).get(control.object.data_key)
        if not isinstance(text, str):
            raise BadInput(f"task {task.get('id')} has no text in data.{control.object.data_key}")
        return text

    async def _text_results(
        self, task: Mapping[str, Any], control: ControlTag, lane: Lane
    ) -> list[dict[str, Any]]:
        text = self._text(task, control)
        found = await self.ner.recognise([text], self.models.ner, lane=lane)
        record = TextRecord(
            text, tuple(SpanRecord(s.start, s.end, s.label, s.score) for s in found.spans[0])
        )
        label_map = LabelMap.for_control(control, self.models.aliases)
        return text_label_results(record, control.name, control.to_name, label_map)
