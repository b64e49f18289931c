"""Learning from Label Studio: its annotations become the examples of the project's text
classifiers (Choices on a Text) and span projects (Labels on a Text: custom entity types);
choices.py serves them, examples.py maps annotations to examples.

Where the labels come from:
- ANNOTATION_CREATED / ANNOTATIONS_CREATED / ANNOTATION_UPDATED webhooks store examples,
  ANNOTATIONS_DELETED removes them; in the background (Label Studio waits 1 s for a webhook),
  one write at a time in arrival order (a delete never overtakes its create). With automatic
  training on (PRELABEL_AUTO_TRAIN), each change retrains in the background.
- "Start Training": the START_TRAINING webhook (Label Studio 1.23.2's default: it carries no
  annotations) pulls the project's annotated tasks from Label Studio's JSON export
  (`GET /api/projects/<id>/export?exportType=JSON&download_all_tasks=false`, with the project's
  token, only from the operator's Label Studio); `POST /train` (the feature flag off) carries
  them. Either way that set becomes the examples (those of annotations no longer in it are
  removed) and the classifiers retrain; the caller waits up to a budget, the rest goes on.
- The first `/setup` or `/predict` of a project in this process pulls its existing annotations
  once, in the background, so a half-labeled project starts from what exists.

Bounds: at most `max_pull` annotations per pull or /train (past it the rest is ignored, and
nothing is removed); the export body under the URL fetcher's cap (PRELABEL_MAX_UPLOAD_BYTES);
`max_background` jobs in flight (more are refused). Every background failure is one log line
and one count (kind "learning"); a failed pull is not retried until the next Start Training.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from app.domain.classify.projects import Projects
from app.domain.labelstudio.choices import LsChoices
from app.domain.labelstudio.config import LabelConfig
from app.domain.labelstudio.examples import (
    KEY_PREFIX,
    Pair,
    changes,
    deleted_keys,
    event_pairs,
    span_changes,
    task_pairs,
)
from app.domain.labelstudio.failures import BackgroundJobs, Failure
from app.domain.labelstudio.fetch import TaskDataFetcher
from app.domain.labelstudio.projects import LsProject
from app.errors import BadInput, FetchFailed, NotFound

UPSERTS = frozenset({"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED"})
REMOVALS = frozenset({"ANNOTATIONS_DELETED", "ANNOTATION_DELETED"})
MAX_PULLED_PROJECTS = 10_000  # projects remembered as pulled in this process


def project_uid(about: Mapping[str, Any]) -> str | None:
    """Label Studio's "<id>.<created unix seconds>" (what /setup and /predict name a project
    by, ml/api_connector.py `_create_project_uid`) from a webhook's `project`, or None."""
    number, created = about.get("id"), about.get("created_at")
    if not isinstance(number, int) or isinstance(number, bool) or not isinstance(created, str):
        return None
    try:
        when = datetime.datetime.fromisoformat(created)
    except ValueError:
        return None
    if when.tzinfo is None:  # Label Studio serializes aware UTC times; naive would be UTC
        when = when.replace(tzinfo=datetime.UTC)
    return f"{number}.{int(when.timestamp())}"


class LsLearning:
    def __init__(
        self,
        projects: Projects,
        choices: LsChoices,
        fetcher: TaskDataFetcher,
        *,
        max_pull: int = 10_000,
        max_background: int = 64,
        on_failure: Failure | None = None,
    ) -> None:
        self.projects = projects
        self.choices = choices
        self.fetcher = fetcher
        self.max_pull = min(max_pull, projects.limits.max_project_examples)
        self.jobs = BackgroundJobs("learning", max_background, on_failure)
        self._pulled: collections.OrderedDict[tuple[str, ...], None] = collections.OrderedDict()
        self._lock = asyncio.Lock()  # example writes one at a time, in arrival order

    def on_event(self, project: LsProject, config: LabelConfig, event: Mapping[str, Any]) -> bool:
        """Act on an annotation webhook in the background; False when it is not one (or the
        config has nothing to learn)."""
        action = event.get("action")
        if not self.choices.all_targets(config) or action not in UPSERTS | REMOVALS:
            return False
        if action in UPSERTS:
            self.jobs.spawn(project.project, self._apply(project, config, event_pairs(event)))
        else:
            self.jobs.spawn(project.project, self._remove(project, config, deleted_keys(event)))
        return True

    def ensure_pulled(self, project: LsProject, config: LabelConfig) -> None:
        """Pull the project's existing annotations once per process, in the background."""
        found = self.choices.all_targets(config)
        if not found:
            return
        key = tuple(self.choices.name(project, t) for t in found)
        if key in self._pulled:
            return
        self._pulled[key] = None
        while len(self._pulled) > MAX_PULLED_PROJECTS:
            self._pulled.popitem(last=False)
        self.jobs.spawn(project.project, self.pull(project, config))

    async def start_training(self, project: LsProject, config: LabelConfig, budget_s: float) -> str:
        """START_TRAINING: pull, store, retrain, waited for up to `budget_s`. Returns "done",
        "running" (it goes on in the background), "refused" (busy) or "nothing to learn"."""
        if not self.choices.all_targets(config):
            return "nothing to learn"
        return await self.jobs.within(
            project.project, self._pull_and_train(project, config), budget_s
        )

    async def train_on(
        self, project: LsProject, config: LabelConfig, tasks: Sequence[object], budget_s: float
    ) -> str:
        """`POST /train`: every annotated task, as `start_training` does with a pull."""
        if not self.choices.all_targets(config):
            return "nothing to learn"
        pairs, complete = self._capped(task_pairs(tasks))
        work = self._apply_and_train(project, config, pairs, complete)
        return await self.jobs.within(project.project, work, budget_s)

    async def pull(self, project: LsProject, config: LabelConfig) -> int:
        """The project's annotated tasks from Label Studio's JSON export, stored as examples.
        Returns how many annotations were read."""
        number = project.project.split(".", 1)[0]
        if not number.isdigit():
            raise BadInput(f"project {project.project!r} is not a Label Studio project id")
        path = f"/api/projects/{number}/export?exportType=JSON&download_all_tasks=false"
        body = await self.fetcher.fetch_json(path, project.access)
        if not isinstance(body, list):
            raise FetchFailed("Label Studio's export is not a list of tasks")
        pairs, complete = self._capped(task_pairs(body))
        await self._apply(project, config, pairs, snapshot=complete)
        return sum(len(anns) for _, anns in pairs)

    def _capped(self, pairs: list[Pair]) -> tuple[list[Pair], bool]:
        """At most `max_pull` annotations, whole tasks; whether nothing was cut."""
        out: list[Pair] = []
        left = self.max_pull
        for task, anns in pairs:
            if len(anns) > left:
                return out, False
            out.append((task, anns))
            left -= len(anns)
        return out, True

    async def _apply(
        self, project: LsProject, config: LabelConfig, pairs: list[Pair], snapshot: bool = False
    ) -> None:
        """Upsert and remove examples for every target; with `snapshot`, `pairs` holds every
        annotation there is, so stored annotation examples missing from it are removed."""
        limits = self.projects.limits
        for t in self.choices.targets(config):
            name = self.choices.name(project, t)
            ch = changes(t, pairs, limits.max_chars)
            async with self._lock:
                if snapshot:
                    ch.removals |= await self._missing(name, ch.upserts)
                ups = list(ch.upserts.values())
                for i in range(0, len(ups), limits.max_examples):
                    await self.projects.add_examples(
                        name,
                        None,
                        ups[i : i + limits.max_examples],
                        labels=t.labels,
                        multi_label=t.multi,
                    )
                await self._delete(name, sorted(ch.removals))
        spans = self.choices.spans
        for t in self.choices.span_targets(config):
            assert spans is not None
            name = self.choices.name(project, t)
            sc = span_changes(t, pairs, limits.max_chars)
            async with self._lock:
                if snapshot:
                    sc.removals |= await self._missing(name, sc.upserts)
                found = list(sc.upserts.values())
                for i in range(0, len(found), limits.max_examples):
                    chunk = found[i : i + limits.max_examples]
                    await spans.add_examples(name, None, chunk, labels=t.labels, ner_model="")
                await self._delete(name, sorted(sc.removals))

    async def _missing(self, name: str, upserts: Mapping[str, object]) -> set[str]:
        """Stored annotation examples of `name` whose key is not in `upserts`."""
        rows = await asyncio.to_thread(self.projects.store.examples, name)
        return {r.key for r in rows if r.key.startswith(KEY_PREFIX) and r.key not in upserts}

    async def _remove(self, project: LsProject, config: LabelConfig, keys: list[str]) -> None:
        if keys:
            async with self._lock:
                for t in self.choices.all_targets(config):
                    await self._delete(self.choices.name(project, t), keys)

    async def _delete(self, name: str, keys: list[str]) -> None:
        per_call = self.projects.limits.max_examples
        for i in range(0, len(keys), per_call):
            try:
                await self.projects.remove_examples(name, None, keys[i : i + per_call])
            except NotFound:  # nothing stored for this target yet
                return

    async def _pull_and_train(self, project: LsProject, config: LabelConfig) -> None:
        await self.pull(project, config)
        await self._train(project, config)

    async def _apply_and_train(
        self, project: LsProject, config: LabelConfig, pairs: list[Pair], complete: bool
    ) -> None:
        await self._apply(project, config, pairs, snapshot=complete)
        await self._train(project, config)

    async def _train(self, project: LsProject, config: LabelConfig) -> None:
        for t in self.choices.all_targets(config):
            try:
                await self.projects.train(self.choices.name(project, t), None, wait=True)
            except NotFound:  # no example for this target
                continue
