"""Predictions learned from a Label Studio project's annotations: `choices` for its `Choices` on
a `Text` (text classifiers), and `labels` spans for its `Labels` on a `Text` (span projects,
custom entity types, merged with the pretrained NER's spans).

Each `Target` (examples.py) is one classify project named
`ls-<instance>-<Label Studio project>-<target>`: the instance is a hash of the Label Studio URL
the project came with (two Label Studio instances never share examples; not the token, which a
webhook does not carry and which may change between /setup and the operator's default), the
project Label Studio's "<id>.<created unix seconds>" (a project deleted and created again with
the same id is another one), the target a hash of the control's name, choices and
single/multi (a config whose choices change starts a new classifier, filled by the next pull).

A Choices target with a trained model answers few-shot; before, zero-shot over the choices (the
result name, and the `hint`, or the value when results use an alias, as the description). A
Labels target with a trained model adds its spans to the pretrained NER's (kept where they
overlap no learned span); before, only the pretrained spans are given, as without learning.

Model version: the project's base version plus the newest classifier tag (`.zs` before the first
model; several targets: a hash of their tags). `/setup` and `/predict` both compute it here, so
after a retrain Label Studio asks again, and stores each task's new prediction once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.domain.classify.projects import Projects
from app.domain.classify.service import TextClassifier
from app.domain.classify.spans import SpanProjects
from app.domain.classify.zeroshot import LabelSpec
from app.domain.formats.labelstudio import text_label_results
from app.domain.formats.records import SpanRecord, TextRecord
from app.domain.labelstudio.config import LabelConfig
from app.domain.labelstudio.examples import Target, span_targets, targets, text_of
from app.domain.labelstudio.projects import LsProject
from app.inference.batcher import Lane

_LS_UID = re.compile(r"\d{1,20}(\.\d{1,20})?")


@dataclass(frozen=True)
class Learned:
    """version: the Label Studio model_version; tags: target control name -> its newest model
    tag, None while it answers zero-shot. No tags: the config has nothing to learn."""

    version: str
    tags: dict[str, str | None]


def short_hash(text: str, n: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def classifier_name(host: str | None, project: str, target: Target) -> str:
    """`ls-<instance>-<project>-<target>` for Label Studio at `host` (None: unknown), its
    project "<id>.<created>" (anything else is hashed) and `target`."""
    instance = short_hash((host or "").lower(), 10)
    uid = project if _LS_UID.fullmatch(project) else short_hash(project, 16)
    kind = [] if target.kind == "choices" else [target.kind]
    what = json.dumps([target.control.name, target.labels, target.multi, *kind])
    return f"ls-{instance}-{uid}-{short_hash(what, 8)}"


class LsChoices:
    def __init__(
        self, projects: Projects, classifier: TextClassifier, spans: SpanProjects | None = None
    ) -> None:
        self.projects = projects
        self.classifier = classifier
        self.spans = spans

    def available(self) -> bool:
        """Whether the embedder is configured (without it, Choices get nothing)."""
        c = self.classifier
        return c.embedder_name in c.registry.states

    def targets(self, config: LabelConfig) -> list[Target]:
        """Choices targets (none without the embedder)."""
        return targets(config) if self.available() else []

    def span_targets(self, config: LabelConfig) -> list[Target]:
        """Labels targets (none without span projects)."""
        return span_targets(config) if self.spans is not None else []

    def all_targets(self, config: LabelConfig) -> list[Target]:
        return [*self.targets(config), *self.span_targets(config)]

    def name(self, project: LsProject, target: Target) -> str:
        """The classify project learning `target` of `project` (see the module docstring)."""
        return classifier_name(project.access.host, project.project, target)

    async def state(self, project: LsProject, config: LabelConfig) -> Learned:
        """The model version and each target's newest model (one indexed read per target)."""
        found = self.all_targets(config)
        if not found:
            return Learned(project.model_version, {})
        store = self.projects.store
        tags: dict[str, str | None] = {}
        for t in found:
            name = self.name(project, t)
            tags[t.control.name] = await asyncio.to_thread(store.latest_model_tag, name)
        if len(found) == 1:
            suffix = tags[found[0].control.name] or "zs"
        else:
            suffix = short_hash(json.dumps(sorted(tags.items())), 8)
        return Learned(f"{project.model_version}.{suffix}", tags)

    async def results(
        self,
        task: Mapping[str, Any],
        config: LabelConfig,
        learned: Learned,
        project: LsProject,
        lane: Lane,
    ) -> tuple[list[dict[str, Any]], list[float | None]]:
        """`choices` results for `task`, one per target whose text the task has; `score` is the
        chosen choices' best score (few-shot probability, zero-shot softmax score). With them,
        each result's uncertainty over all its choices (app/domain/uncertainty.py, margin)."""
        out: list[dict[str, Any]] = []
        uncertain: list[float | None] = []
        for t in self.targets(config):
            if t.control.name not in learned.tags:
                continue
            text = text_of(task, t, self.projects.limits.max_chars)
            if text is None:
                continue
            if learned.tags[t.control.name] is None:
                specs = [LabelSpec(lab, _description(t, lab)) for lab in t.labels]
                got = await self.classifier.classify(
                    [text], labels=specs, multi_label=t.multi, lane=lane
                )
            else:
                name = self.name(project, t)
                got = await self.classifier.classify([text], project=name, lane=lane)
            res = got.results[0]
            if not res.labels:
                continue
            score = max((s.score for s in res.scores if s.label in res.labels), default=None)
            out.append(
                {
                    "from_name": t.control.name,
                    "to_name": t.control.to_name,
                    "type": "choices",
                    "value": {"choices": list(res.labels)},
                    "score": score,
                }
            )
            uncertain.append(res.uncertainty)
        return out, uncertain

    async def merge_spans(
        self,
        task: Mapping[str, Any],
        config: LabelConfig,
        learned: Learned,
        project: LsProject,
        lane: Lane,
        results: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """`results` with each trained Labels target's learned spans: the pretrained `labels`
        results of that control are kept where they overlap no learned span, and the
        control's results are numbered afresh."""
        for t in self.span_targets(config):
            if self.spans is None or learned.tags.get(t.control.name) is None:
                continue
            text = text_of(task, t, self.projects.limits.max_chars)
            if text is None:
                continue
            got = await self.spans.predict(self.name(project, t), None, [text], lane)
            mine = [SpanRecord(s.start, s.end, s.label, s.score) for s in got.spans[0]]
            theirs = [r for r in results if r.get("from_name") == t.control.name]
            kept = [
                SpanRecord(v["start"], v["end"], v["labels"][0], r.get("score"))
                for r in theirs
                if isinstance(v := r.get("value"), dict)
                and not any(v["start"] < m.end and m.start < v["end"] for m in mine)
            ]
            merged = sorted([*mine, *kept], key=lambda s: (s.start, s.end))
            record = TextRecord(text, tuple(merged))
            results = [r for r in results if r.get("from_name") != t.control.name]
            results += text_label_results(record, t.control.name, t.control.to_name)
        return results


def _description(target: Target, label: str) -> str | None:
    """What a choice means for zero-shot: its hint, else its value when results name it by an
    alias."""
    for lab in target.control.labels:
        if lab.result_value == label:
            if lab.hint:
                return lab.hint
            return lab.value if lab.alias and lab.alias != lab.value else None
    return None
