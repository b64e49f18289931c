"""Label Studio `/predict`: pre-annotations for a batch of tasks, and interactive SAM masks.

Batch ("retrieve predictions" sends every selected task in one call): each task is one
background computation on the bulk lane; the call answers within a time budget with results for
the tasks done and result-less entries (which Label Studio skips) for the rest, and the next call
returns those at once. Interactive (a smart keypoint or rectangle drawn in the editor): the
clicks and boxes in `params.context.result` become one SAM prompt on the task image's cached
embedding, answered with a `brushlabels` mask.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.domain.detection import DetectionService, DetectParams
from app.domain.formats.labelstudio import (
    brush_results,
    percent_to_pixels,
    polygon_results,
    prediction,
    rect_to_box,
    rectangle_results,
    text_label_results,
)
from app.domain.formats.records import ImageRecord, ObjectRecord, SpanRecord, TextRecord
from app.domain.labelstudio.config import (
    ControlTag,
    LabelConfig,
    LabelConfigError,
    LabelMap,
    parse_label_config,
)
from app.domain.labelstudio.fetch import TaskDataFetcher
from app.domain.labelstudio.pending import PendingResults
from app.domain.labelstudio.projects import LsProject, LsProjects
from app.domain.masks import decode
from app.domain.prompts import Point, Prompt
from app.domain.segmentation import SegmentationService
from app.domain.text import NerService
from app.errors import BadInput
from app.inference.batcher import Lane
from app.inference.cache import TTLCache

log = logging.getLogger(__name__)

Prediction = dict[str, Any]
IMAGE_CONTROLS = ("RectangleLabels", "BrushLabels", "PolygonLabels")


@dataclass(frozen=True)
class LsModels:
    """Which models answer Label Studio, and how. Empty names disable that kind of result."""

    detector: str
    sam: str
    ner: str
    score_threshold: float = 0.35
    aliases: Mapping[str, str] | None = None  # model class -> config label (settings)


def _config(schema: str) -> LabelConfig:
    try:
        return _parsed(schema)
    except LabelConfigError as e:  # the project's config, as Label Studio sent it: a 400
        raise BadInput(str(e)) from e


@functools.lru_cache(maxsize=64)
def _parsed(schema: str) -> LabelConfig:
    return parse_label_config(schema)


class LabelStudioPredictor:
    def __init__(
        self,
        projects: LsProjects,
        fetcher: TaskDataFetcher,
        detection: DetectionService,
        segmentation: SegmentationService,
        ner: NerService,
        models: LsModels,
        budget_s: float,
        images: TTLCache[bytes],
    ) -> None:
        self.projects = projects
        self.fetcher = fetcher
        self.detection = detection
        self.segmentation = segmentation
        self.ner = ner
        self.models = models
        self.budget_s = budget_s
        self.images = images
        self.pending: PendingResults[Prediction] = PendingResults()
        self._background: set[asyncio.Task[None]] = set()

    def project(self, project_id: str, label_config: str | None) -> LsProject:
        """The project as `/setup` recorded it; set up again when the config changed (or when
        this process never saw `/setup`, after a restart)."""
        known = self.projects.get(project_id)
        if known is not None and (not label_config or label_config == known.schema):
            return known
        if not label_config:
            raise BadInput(f"project {project_id!r} is unknown and no label_config was sent")
        host, token = (known.hostname, known.access_token) if known else (None, None)
        return self.projects.setup(project_id, label_config, host, token)

    async def predict(
        self,
        tasks: Sequence[Mapping[str, Any]],
        project_id: str,
        label_config: str | None,
        params: Mapping[str, Any] | None,
    ) -> list[Prediction]:
        project = self.project(project_id, label_config)
        config = _config(project.schema)
        context = (params or {}).get("context") or {}
        regions = context.get("result") if isinstance(context, Mapping) else None
        if regions and not isinstance(regions, list):
            raise BadInput("params.context.result must be a list of regions")
        if regions:
            if len(tasks) != 1:
                raise BadInput("an interactive request carries exactly one task")
            return [await self._interactive(tasks[0], regions, config, project)]
        lane = Lane.INTERACTIVE if len(tasks) == 1 else Lane.BULK
        jobs = [
            (
                (project.model_version, _task_key(task)),
                functools.partial(self._task, task, config, project, lane),
            )
            for task in tasks
        ]
        out: list[Prediction] = []
        for task, got in zip(tasks, await self.pending.within(jobs, self.budget_s), strict=True):
            if isinstance(got, dict):
                out.append(got)
                continue
            if isinstance(got, BaseException):
                log.warning("task %s: %s", task.get("id"), got)
            out.append({"model_version": project.model_version})  # no result: not stored
        return out

    async def drain(self) -> None:
        """Wait for the background work: predictions past their budget, precomputed embeddings."""
        await self.pending.drain()
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def precompute_embeddings(self, project: LsProject, tasks: Sequence[Mapping[str, Any]]) -> int:
        """Start computing SAM embeddings for new tasks' images on the bulk lane (TASKS_CREATED
        webhook), so the first click on any of them is fast. Returns how many were started."""
        if not self.models.sam:
            return 0
        config = _config(project.schema)
        keys = {c.object.data_key for c in config.controls_for("BrushLabels", "Image") if c.object}
        started = 0
        for task in tasks:
            for key in keys:
                job = asyncio.ensure_future(self._embed(task, key, project))
                self._background.add(job)
                job.add_done_callback(self._background.discard)
                started += 1
        return started

    async def _embed(self, task: Mapping[str, Any], key: str, project: LsProject) -> None:
        try:
            data = await self._image(task, key, project)
            await self.segmentation.embed(data, self.models.sam, Lane.BULK)
        except Exception as e:  # a background nicety: log, never raise
            log.warning("precomputing the embedding of task %s failed: %s", task.get("id"), e)

    async def _image(self, task: Mapping[str, Any], key: str, project: LsProject) -> bytes:
        ref = (task.get("data") or {}).get(key)
        if not isinstance(ref, str) or not ref:
            raise BadInput(f"task {task.get('id')} has no data.{key}")
        cache_key = f"{project.hostname}|{ref}"
        data = self.images.get(cache_key)
        if data is None:
            data = await self.fetcher.fetch(ref, project.hostname, project.access_token)
            self.images.put(cache_key, data)
        return data

    async def _task(
        self, task: Mapping[str, Any], config: LabelConfig, project: LsProject, lane: Lane
    ) -> Prediction:
        results: list[dict[str, Any]] = []
        image_controls = [c for t in IMAGE_CONTROLS for c in config.controls_for(t, "Image")]
        by_key: dict[str, list[ControlTag]] = {}
        for c in image_controls:
            assert c.object is not None
            by_key.setdefault(c.object.data_key, []).append(c)
        for key, controls in by_key.items():
            if self.models.detector:
                results += await self._image_results(task, key, controls, project, lane)
        for c in config.controls_for("Labels"):
            if c.object is None or c.object.tag.lower() not in ("text", "hypertext"):
                continue
            if self.models.ner:
                results += await self._text_results(task, c, lane)
        return prediction(results, None, project.model_version)

    async def _image_results(
        self,
        task: Mapping[str, Any],
        key: str,
        controls: list[ControlTag],
        project: LsProject,
        lane: Lane,
    ) -> list[dict[str, Any]]:
        data = await self._image(task, key, project)
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

    async def _text_results(
        self, task: Mapping[str, Any], control: ControlTag, lane: Lane
    ) -> list[dict[str, Any]]:
        assert control.object is not None
        text = (task.get("data") or {}).get(control.object.data_key)
        if not isinstance(text, str):
            raise BadInput(f"task {task.get('id')} has no text in data.{control.object.data_key}")
        found = await self.ner.recognise([text], self.models.ner, lane=lane)
        record = TextRecord(
            text, tuple(SpanRecord(s.start, s.end, s.label, s.score) for s in found.spans[0])
        )
        label_map = LabelMap.for_control(control, self.models.aliases)
        return text_label_results(record, control.name, control.to_name, label_map)

    async def _interactive(
        self,
        task: Mapping[str, Any],
        regions: Sequence[Mapping[str, Any]],
        config: LabelConfig,
        project: LsProject,
    ) -> Prediction:
        """Every keypoint and rectangle region in the context is one prompt: keypoints are
        clicks (`is_positive`), a rectangle is the box. Answer: one brushlabels mask."""
        if not isinstance(regions[0], Mapping):
            raise BadInput("params.context.result must be a list of regions (objects)")
        to_name = str(regions[0].get("to_name", ""))
        brushes = [c for c in config.controls_for("BrushLabels", "Image") if to_name in c.to_names]
        if not brushes or not self.models.sam:
            return {"model_version": project.model_version}
        brush = brushes[0]
        assert brush.object is not None
        data = await self._image(task, brush.object.data_key, project)
        points: list[Point] = []
        box: tuple[float, float, float, float] | None = None
        label = ""
        for i, r in enumerate(regions):
            try:  # regions are client JSON: any field may be missing or of any type
                value = r.get("value") or {}
                w, h = int(r.get("original_width", 0)), int(r.get("original_height", 0))
                if w <= 0 or h <= 0:
                    raise BadInput("context regions need original_width and original_height")
                kind = str(r.get("type", ""))
                names = value.get(kind) or []
                label = label or (str(names[0]) if names else "")
                if kind == "keypointlabels":
                    x, y = percent_to_pixels(float(value["x"]), float(value["y"]), w, h)
                    points.append(Point(x, y, bool(r.get("is_positive", True))))
                elif kind == "rectanglelabels":
                    x1, y1, x2, y2 = rect_to_box(value, w, h)
                    box = (x1, y1, x2, y2)
            except (AttributeError, LookupError, ArithmeticError, TypeError, ValueError) as e:
                raise BadInput(f"context region {i} is malformed ({type(e).__name__})") from e
        result = await self.segmentation.segment(
            Prompt(points=tuple(points), box=box),
            self.models.sam,
            image=data,
            lane=Lane.INTERACTIVE,
        )
        mask = result.masks[0]
        label_map = LabelMap.for_control(brush, self.models.aliases)
        name = label_map(label) or (brush.labels[0].result_value if brush.labels else label)
        image = ImageRecord(
            brush.object.data_key, result.width, result.height, (mask.as_record(name),)
        )
        results = brush_results(image, brush.name, brush.to_name, label_map=None)
        return prediction(results, mask.predicted_iou, project.model_version)


def _task_key(task: Mapping[str, Any]) -> str:
    if task.get("id") is not None:
        return f"id:{task['id']}"
    blob = json.dumps(task.get("data"), sort_keys=True, default=str).encode()
    return "data:" + hashlib.sha256(blob).hexdigest()[:24]
