"""Use case: span projects, whose examples are texts with annotated entity spans in the
project's own labels (DRUG, DOSAGE, ...), and whose predictions merge a learned recogniser
(`span_trainer.py`, `app.inference.span_model`) with a pretrained NER model's spans for the
labels that model knows.

Conventions: offsets are [start, end) code points (Python `str` indices), as in /v1/ner. A
project's `options` (JSON, set when it is created) hold `pretrained` ({project label:
pretrained label}; default: a pretrained label serves the project label of the same name) and
`ner_model` (None: the server's default NER model; "": none).

Merging: every span of the learned model is kept; a pretrained span (relabelled to the project's
label) is added where it overlaps no learned span. Each span says where it came from; the
response names the learned model's version (`<n>-<hash>`, None before the first) and the
pretrained model's.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.domain.apikeys import Principal
from app.domain.classify.limits import check_texts, clean_labels
from app.domain.classify.projects import (
    ModelInfo,
    ProjectConflict,
    Projects,
    _may_see,
    check_name,
    check_reserved,
)
from app.domain.classify.store import ExampleIn, ProjectRow
from app.domain.ner import NerService
from app.errors import ValidationFailed
from app.inference.batcher import Lane
from app.inference.span_model import SpanModel

MAX_SPANS_PER_TEXT = 500
Triple = tuple[int, int, str]


@dataclass(frozen=True)
class SpanExample:
    text: str
    spans: tuple[Triple, ...]  # may be empty: a text with no entity teaches that too
    key: str | None = None  # default: a hash of the text


@dataclass(frozen=True)
class FoundSpan:
    start: int
    end: int
    label: str  # the project's label
    text: str
    score: float | None
    source: Literal["project", "pretrained"]


@dataclass(frozen=True)
class SpanResult:
    project: str
    model_version: str | None  # the learned model's tag; None before the first
    pretrained: str | None  # "<model>@<version>" whose spans were merged, None when none
    spans: list[list[FoundSpan]]
    timings: dict[str, float]


class SpanProjects:
    def __init__(self, projects: Projects, ner: NerService, default_ner: str) -> None:
        self.projects = projects
        self.ner = ner
        self.default_ner = default_ner
        self._models: dict[str, tuple[str, SpanModel]] = {}  # project -> (tag, model)

    async def add_examples(
        self,
        name: str,
        who: Principal | None,
        examples: Sequence[SpanExample],
        labels: Sequence[str] | None = None,
        pretrained: Mapping[str, str] | None = None,
        ner_model: str | None = None,
    ) -> ModelInfo:
        """Validate everything, store in one transaction (nothing on a 4xx), retrain in the
        background. `labels`, `pretrained` and `ner_model` are read when this call creates the
        project; later calls must repeat them unchanged or leave them out (else 409)."""
        check_name(name)
        limits = self.projects.limits
        if not examples:
            raise ValidationFailed("examples is empty")
        if len(examples) > limits.max_examples:
            raise ValidationFailed(
                f"{len(examples)} examples in one call; at most {limits.max_examples} "
                "(send them in several calls)"
            )
        fixed = None if labels is None else clean_labels(labels, "labels")
        options = _options(pretrained, ner_model, fixed)
        check_reserved(name, who)
        store = self.projects.store
        row = await asyncio.to_thread(store.get_project, name)
        if row is not None:
            if not _may_see(row, who):
                raise ProjectConflict(f"project name {name!r} is taken by another API key")
            _same_kind(row)
            if fixed is not None and row.labels != fixed:
                raise ProjectConflict(f"project {name!r} has labels {list(row.labels or [])}")
            if (pretrained is not None or ner_model is not None) and row.options != options:
                raise ProjectConflict(f"project {name!r} has other pretrained options")
        allowed = row.labels if row is not None else fixed
        rows = _validated(examples, allowed, limits.max_chars)
        have = await asyncio.to_thread(store.count_examples, name) if row else 0
        if have + len(rows) > limits.max_project_examples:
            raise ValidationFailed(
                f"project {name!r} holds {have} examples; {len(rows)} more would pass its cap "
                f"of {limits.max_project_examples}"
            )
        now = time.time()
        if row is None:
            owner = None if who is None else who.name
            made = await asyncio.to_thread(
                store.create_project, name, owner, fixed, True, now, "spans", options
            )
            if not _may_see(made, who):
                raise ProjectConflict(f"project name {name!r} is taken by another API key")
            _same_kind(made)
        await asyncio.to_thread(store.add_examples, name, rows, now)
        if self.projects.auto_train:
            self.projects.trainer_for(name, "spans").request(name)
        return await self.projects.info(name, who)

    async def predict(
        self,
        name: str,
        who: Principal | None,
        texts: Sequence[str],
        lane: Lane = Lane.INTERACTIVE,
    ) -> SpanResult:
        """Per text, the merged spans (sorted by start)."""
        row = await self.projects.visible(name, who)
        _same_kind(row)
        limits = self.projects.limits
        if not texts:
            raise ValidationFailed("texts is empty")
        if len(texts) > limits.max_texts:
            raise ValidationFailed(f"{len(texts)} texts; at most {limits.max_texts}")
        check_texts(texts, limits.max_chars)
        t0 = time.perf_counter()
        model = await self._model(name)
        learned: list[list[FoundSpan]] = [[] for _ in texts]
        if model is not None:
            found = await asyncio.to_thread(model[1].predict, list(texts))
            learned = [
                [
                    FoundSpan(s.start, s.end, s.label, t[s.start : s.end], s.score, "project")
                    for s in f
                ]
                for t, f in zip(texts, found, strict=True)
            ]
        opts = json.loads(row.options or "{}")
        ner_name = self.default_ner if opts.get("ner_model") is None else opts["ner_model"]
        mapping: dict[str, str] = opts.get("pretrained") or {}
        if not mapping:  # by name: the labels the project declares or uses
            names = row.labels or tuple(await self.projects.label_names(name))
            mapping = {n: n for n in names}
        inverse = {pre: mine for mine, pre in mapping.items()}
        pretrained_tag = None
        merged = learned
        if ner_name and ner_name in self.ner.registry.states and inverse:
            r = await self.ner.recognise(texts, ner_name, lane=lane)
            pretrained_tag = f"{r.model}@{r.version}"
            merged = []
            for own, theirs in zip(learned, r.spans, strict=True):
                extra = [
                    FoundSpan(s.start, s.end, inverse[s.label], s.text, s.score, "pretrained")
                    for s in theirs
                    if s.label in inverse
                    and not any(s.start < o.end and o.start < s.end for o in own)
                ]
                merged.append(sorted(own + extra, key=lambda s: (s.start, s.end)))
        ms = round((time.perf_counter() - t0) * 1000, 2)
        tag = model[0] if model else None
        return SpanResult(name, tag, pretrained_tag, merged, {"total_ms": ms})

    async def _model(self, project: str) -> tuple[str, SpanModel] | None:
        """The newest stored model, loaded once per tag."""
        store = self.projects.store
        tag = await asyncio.to_thread(store.latest_model_tag, project)
        cached = self._models.get(project)
        if tag is None:
            self._models.pop(project, None)
            return None
        if cached is not None and cached[0] == tag:
            return cached
        row = await asyncio.to_thread(store.latest_model, project)
        if row is None:
            return None
        model = await asyncio.to_thread(SpanModel, json.loads(row.payload))
        self._models[project] = (row.tag, model)
        return row.tag, model


def _same_kind(row: ProjectRow) -> None:
    if row.kind != "spans":
        raise ProjectConflict(f"project {row.name!r} is a {row.kind} project, not a span project")


def _options(
    pretrained: Mapping[str, str] | None, ner_model: str | None, fixed: tuple[str, ...] | None
) -> str:
    mapping: dict[str, Any] = {}
    for mine, theirs in (pretrained or {}).items():
        (label,) = clean_labels([mine], "pretrained")
        (other,) = clean_labels([theirs], f"pretrained[{mine!r}]")
        if fixed is not None and label not in fixed:
            raise ValidationFailed(f"pretrained: {label!r} is not in the project's labels")
        mapping[label] = other
    if len(set(mapping.values())) != len(mapping):
        raise ValidationFailed("pretrained: two project labels map to one pretrained label")
    return json.dumps({"pretrained": mapping or None, "ner_model": ner_model}, sort_keys=True)


def _validated(
    examples: Sequence[SpanExample], allowed: tuple[str, ...] | None, max_chars: int
) -> list[ExampleIn]:
    check_texts([e.text for e in examples], max_chars, "examples[{}].text")
    out: list[ExampleIn] = []
    unknown: set[str] = set()
    for i, e in enumerate(examples):
        if len(e.spans) > MAX_SPANS_PER_TEXT:
            raise ValidationFailed(f"examples[{i}] has more than {MAX_SPANS_PER_TEXT} spans")
        spans: list[Triple] = []
        for j, (start, end, raw) in enumerate(e.spans):
            where = f"examples[{i}].spans[{j}]"
            (label,) = clean_labels([raw], f"{where}.label")
            if not 0 <= start < end <= len(e.text):
                raise ValidationFailed(
                    f"{where}: [{start}, {end}) is not a non-empty range inside the text "
                    f"({len(e.text)} code points)"
                )
            if not e.text[start:end].strip():
                raise ValidationFailed(f"{where} covers only whitespace")
            if allowed is not None and label not in allowed:
                unknown.add(label)
            spans.append((start, end, label))
        spans.sort()
        for a, b in itertools.pairwise(spans):
            if b[0] < a[1]:
                raise ValidationFailed(f"examples[{i}]: spans {list(a)} and {list(b)} overlap")
        key = e.key or hashlib.sha256(e.text.encode()).hexdigest()[:24]
        if len(key) > 256:
            raise ValidationFailed(f"examples[{i}].key is longer than 256 characters")
        out.append(ExampleIn(key, e.text, tuple(s[2] for s in spans), tuple(spans)))
    if unknown:
        raise ValidationFailed(
            f"labels not in the project's label set {list(allowed or [])}: {sorted(unknown)[:10]}"
        )
    return out
