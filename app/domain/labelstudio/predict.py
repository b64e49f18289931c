"""Label Studio `/predict`: pre-annotations for a batch of tasks, and interactive SAM masks.

Batch ("retrieve predictions" sends every selected task in one call): each task is one
background computation on the bulk lane; the call answers within a time budget with a
prediction for each task done and an empty list for the rest (Label Studio reads a task's entry
as its list of predictions: an empty one stores nothing, logs nothing, and the task is asked for
again next time; a dict without `result` makes it log an error per task), and the next call
returns those at once. Results are kept per project, credentials (`LsAccess.fingerprint`),
model version, task id and task data, so no other project or caller ever gets them. Each
prediction's `score` is 1 - the task's uncertainty (ranking.py), what Label Studio's
"Uncertainty sampling" and the Data Manager's prediction score sort by.

Interactive (a smart keypoint or rectangle drawn in the editor): the regions in
`params.context.result` (interactive.py) become one SAM prompt on the task image's cached
embedding, answered with a `brushlabels` mask.

Background failures (a prediction past its budget, a precomputed embedding) are reported once
each through `failures`: one log line (kind, project, task, reason; URL query strings cut) and
`on_failure(kind, reason)` (the runtime counts them in prometheus).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, NamedTuple

from app.domain.formats.labelstudio import brush_results, prediction
from app.domain.formats.records import ImageRecord
from app.domain.labelstudio.choices import Learned
from app.domain.labelstudio.config import ConfigCache, LabelConfig, LabelConfigError, LabelMap
from app.domain.labelstudio.failures import Failure, report
from app.domain.labelstudio.fetch import TaskDataFetcher, storage_scheme
from app.domain.labelstudio.interactive import clicks, context_regions
from app.domain.labelstudio.learning import LsLearning
from app.domain.labelstudio.pending import PendingResults
from app.domain.labelstudio.projects import LsAccess, LsProject, LsProjects
from app.domain.labelstudio.ranking import task_score, task_uncertainty
from app.domain.labelstudio.tasks import LsModels, TaskPredictor, task_data
from app.domain.segmentation import SegmentationService
from app.errors import BadInput, ValidationFailed
from app.inference.batcher import Lane
from app.inference.cache import TTLCache

log = logging.getLogger(__name__)

Prediction = dict[str, Any]

__all__ = ["LabelStudioPredictor", "LsModels", "TaskKey", "image_key"]


class TaskKey(NamedTuple):
    """What a finished prediction is kept under."""

    project: str
    credentials: str  # LsAccess.fingerprint
    model_version: str
    task: str  # the task id as sent, "" when none
    data: str  # SHA-256 of the task's data (canonical JSON), 24 hex digits


def task_key(project: LsProject, task: Mapping[str, Any]) -> TaskKey:
    blob = json.dumps(task.get("data"), sort_keys=True, default=str).encode("utf-8", "replace")
    task_id = task.get("id")
    return TaskKey(
        project.project,
        project.access.fingerprint,
        project.model_version,
        "" if task_id is None else str(task_id)[:64],
        hashlib.sha256(blob).hexdigest()[:24],
    )


def image_key(access: LsAccess, ref: str, task_id: object) -> str:
    """The task-image cache key: credentials, the reference, and for a storage URI (resolved
    per task) the task id."""
    per_task = str(task_id) if storage_scheme(ref) else ""
    return f"{access.fingerprint}|{per_task}|{ref}"


def _nbytes(result: Prediction) -> int:
    return len(json.dumps(result, separators=(",", ":"), default=str))


class LabelStudioPredictor:
    def __init__(
        self,
        projects: LsProjects,
        fetcher: TaskDataFetcher,
        tasks: TaskPredictor,
        segmentation: SegmentationService,
        models: LsModels,
        budget_s: float,
        images: TTLCache[bytes],
        *,
        max_regions: int = 65,
        pending_bytes: int = 64 * 1024 * 1024,
        max_precompute: int = 256,
        on_failure: Failure | None = None,
        learning: LsLearning | None = None,
    ) -> None:
        self.projects = projects
        self.learning = learning
        self.fetcher = fetcher
        self.tasks = tasks
        self.segmentation = segmentation
        self.models = models
        self.budget_s = budget_s
        self.images = images
        self.max_regions = max_regions
        self.max_precompute = max_precompute
        self.on_failure = on_failure
        self.configs = ConfigCache()
        self.pending: PendingResults[Prediction] = PendingResults(
            max_bytes=pending_bytes, size=_nbytes, on_failure=self._prediction_failed
        )
        self._background: set[asyncio.Task[None]] = set()

    def report(self, kind: str, project: object, task: object, error: BaseException) -> None:
        """One line and one count per background failure; a traceback only when unexpected."""
        report(kind, project, task, error, self.on_failure)

    def _prediction_failed(self, key: Hashable, error: BaseException) -> None:
        project, task = (key.project, key.task) if isinstance(key, TaskKey) else ("?", key)
        self.report("prediction", project, task, error)

    async def config(self, schema: str) -> LabelConfig:
        """The parsed labeling config, parsed on a worker thread (a hostile config must not
        hold the event loop) and cached; BadInput (400) when it does not parse."""
        try:
            return await asyncio.to_thread(self.configs.parse, schema)
        except LabelConfigError as e:  # the project's config, as Label Studio sent it
            raise BadInput(str(e)) from e

    def project(self, project_id: str, label_config: str | None) -> LsProject:
        """The project as `/setup` recorded it; with a new config when it changed (or when
        this process never saw `/setup`, after a restart: then with the operator's Label
        Studio, PRELABEL_LABEL_STUDIO_URL and its token)."""
        known = self.projects.get(project_id)
        if known is not None and (not label_config or label_config == known.schema):
            return known
        if not label_config:
            raise BadInput(f"project {project_id!r} is unknown and no label_config was sent")
        return self.projects.with_schema(known, project_id, label_config)

    async def predict(
        self,
        tasks: Sequence[Mapping[str, Any]],
        project_id: str,
        label_config: str | None,
        params: Mapping[str, Any] | None,
    ) -> list[Prediction | list[Prediction]]:
        """One entry per task, in order: a prediction, or [] (not finished or failed)."""
        regions = context_regions(params, self.max_regions)
        if regions is not None and len(tasks) != 1:
            raise ValidationFailed("an interactive request (params.context.result) has one task")
        project = self.project(project_id, label_config)
        config = await self.config(project.schema)
        if regions is not None:
            return [await self._interactive(tasks[0], regions, config, project)]
        learned = None
        if self.learning is not None:
            learned = await self.learning.choices.state(project, config)
            project = dataclasses.replace(project, model_version=learned.version)
            self.learning.ensure_pulled(project, config)
        lane = Lane.INTERACTIVE if len(tasks) == 1 else Lane.BULK
        jobs = [
            (task_key(project, task), self._job(task, config, project, lane, learned))
            for task in tasks
        ]
        done = await self.pending.within(jobs, self.budget_s)
        return [got if isinstance(got, dict) else [] for got in done]

    def _job(
        self,
        task: Mapping[str, Any],
        config: LabelConfig,
        project: LsProject,
        lane: Lane,
        learned: Learned | None = None,
    ) -> Callable[[], Any]:
        async def compute() -> Prediction:
            image = lambda key: self.image(task, key, project)  # noqa: E731
            results = await self.tasks.results(task, config, image, lane)
            uncertain: list[float | None] = []
            if self.learning is not None and learned is not None and learned.tags:
                served = self.learning.choices
                results = await served.merge_spans(task, config, learned, project, lane, results)
                chosen, uncertain = await served.results(task, config, learned, project, lane)
                results += chosen
            images, texts = self.tasks.looked_at(config)
            score = task_score(task_uncertainty(results, images, texts, uncertain))
            return prediction(results, score, project.model_version)

        return compute

    async def drain(self) -> None:
        """Wait for the background work: predictions past their budget, precomputed embeddings."""
        await self.pending.drain()
        if self.learning is not None:
            await self.learning.jobs.drain()
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def precompute_embeddings(
        self, project: LsProject, tasks: Sequence[Mapping[str, Any]]
    ) -> int:
        """Start computing SAM embeddings for new tasks' images on the bulk lane (TASKS_CREATED
        webhook), so the first click on any of them is fast; at most `max_precompute` at a
        time, the rest skipped (counted, one line per call). Returns how many were started."""
        if not self.models.sam:
            return 0
        config = await self.config(project.schema)
        keys = {c.object.data_key for c in config.controls_for("BrushLabels", "Image") if c.object}
        started = skipped = 0
        for task in tasks:
            for key in keys:
                if len(self._background) >= self.max_precompute:
                    skipped += 1
                    continue
                job = asyncio.ensure_future(self._embed(task, key, project))
                self._background.add(job)
                job.add_done_callback(self._background.discard)
                started += 1
        if skipped:
            log.warning(
                "label studio embedding skipped: project=%s tasks=%d reason=over_capacity "
                "(%d precomputations in flight, PRELABEL_LS_MAX_PRECOMPUTE)",
                project.project, skipped, self.max_precompute,
            )  # fmt: skip
            for _ in range(skipped):
                if self.on_failure is not None:
                    self.on_failure("embedding", "over_capacity")
        return started

    async def _embed(self, task: Mapping[str, Any], key: str, project: LsProject) -> None:
        try:
            data = await self.image(task, key, project)
            await self.segmentation.embed(data, self.models.sam, Lane.BULK)
        except Exception as e:  # a background nicety: reported, never raised
            self.report("embedding", project.project, task.get("id"), e)

    async def image(self, task: Mapping[str, Any], key: str, project: LsProject) -> bytes:
        """The bytes of the image in `task["data"][key]`, fetched once per credentials."""
        ref = task_data(task).get(key)
        if not isinstance(ref, str) or not ref:
            raise BadInput(f"task {task.get('id')} has no data.{key}")
        cache_key = image_key(project.access, ref, task.get("id"))
        data = self.images.get(cache_key)
        if data is None:
            data = await self.fetcher.fetch_task(ref, project.access, task.get("id"))
            self.images.put(cache_key, data)
        return data

    async def _interactive(
        self,
        task: Mapping[str, Any],
        regions: Sequence[Mapping[str, Any]],
        config: LabelConfig,
        project: LsProject,
    ) -> Prediction:
        """Every keypoint and rectangle region is one prompt: keypoints are clicks, a rectangle
        is the box. Answer: one brushlabels mask, or an empty result when the config has no
        BrushLabels on the regions' image (or no SAM model is set)."""
        to_name = str(regions[0].get("to_name", ""))
        brushes = [c for c in config.controls_for("BrushLabels", "Image") if to_name in c.to_names]
        if not brushes or not self.models.sam:
            return prediction([], None, project.model_version)
        brush = brushes[0]
        assert brush.object is not None
        asked = clicks(regions)  # malformed regions are a 422 before any fetch
        data = await self.image(task, brush.object.data_key, project)
        result = await self.segmentation.segment(
            asked.prompt, self.models.sam, image=data, lane=Lane.INTERACTIVE
        )
        mask = result.masks[0]
        label_map = LabelMap.for_control(brush, self.models.aliases)
        name = label_map(asked.label) or (
            brush.labels[0].result_value if brush.labels else asked.label
        )
        image = ImageRecord(
            brush.object.data_key, result.width, result.height, (mask.as_record(name),)
        )
        results = brush_results(image, brush.name, brush.to_name, label_map=None)
        return prediction(results, mask.predicted_iou, project.model_version)
