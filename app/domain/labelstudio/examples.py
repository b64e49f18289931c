"""Label Studio annotations -> labeled examples for a project's text classifiers (pure).

Each `Choices` control on a `Text` object (not `perRegion`: those describe regions) is a
`Target`: one classifier, whose label set is the control's choices as results name them
(`alias or value`), single- or multi-label as the control's `choice` says.

An annotation becomes one example per target, keyed `ann-<annotation id>`: several annotators of
a task are several examples, an update replaces the labels under the same key, and
`ANNOTATIONS_DELETED` (which carries only annotation ids) removes exactly those keys. An
annotation that no longer holds a usable choice for a target (skipped, `was_cancelled`, its
choices cleared, only choices the config no longer offers, a single-choice control with several)
is a removal for that target. Tasks whose text is missing, empty or over `max_chars` are skipped.

Shapes Label Studio 1.23.2 sends (read in its source):
- ANNOTATION_CREATED / ANNOTATION_UPDATED webhooks: `{"annotation": {id, result, was_cancelled,
  task: <id>, ...}, "task": {id, data, ...}, "project": {...}}`; ANNOTATIONS_CREATED the same
  with lists (webhooks/models.py);
- `POST /train` (ml/api_connector.py `train`) and the JSON export
  (`/api/projects/<id>/export?exportType=JSON`): every annotated task as `{id, data,
  annotations: [...]}` (data_export/serializers.py ExportDataSerializer);
- a choices result: `{"from_name", "to_name", "type": "choices", "value": {"choices": [...]}}`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.domain.classify.limits import MAX_LABELS_PER_EXAMPLE
from app.domain.classify.projects import Example
from app.domain.classify.spans import SpanExample
from app.domain.labelstudio.config import ControlTag, LabelConfig

KEY_PREFIX = "ann-"
TEXT_TAGS = ("text",)

Pair = tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]
"""(a task with its `data`, the annotations of it to learn from)."""


@dataclass(frozen=True)
class Target:
    """A classifier to learn: `control` labels the text in `data[data_key]` with `labels`."""

    control: ControlTag
    data_key: str
    labels: tuple[str, ...]  # the results' names for the choices (labels), config order
    multi: bool
    kind: str = "choices"  # or "spans": a `Labels` control on a Text (custom entity types)


@dataclass
class Changes:
    """What a batch of annotations does to one target's examples."""

    upserts: dict[str, Example] = field(default_factory=dict)  # key -> example, last one wins
    removals: set[str] = field(default_factory=set)
    skipped: int = 0  # annotations of tasks without a usable text


def targets(config: LabelConfig) -> list[Target]:
    """The config's learnable `Choices` controls, in config order (a single-choice control
    needs two choices, a multiple one one)."""
    out: list[Target] = []
    for c in config.controls_for("Choices"):
        if c.per_region or c.object is None or c.object.tag.lower() not in TEXT_TAGS:
            continue
        labels = tuple(dict.fromkeys(lab.result_value for lab in c.labels))
        if len(labels) >= (1 if c.multiple else 2):
            out.append(Target(c, c.object.data_key, labels, c.multiple))
    return out


def span_targets(config: LabelConfig) -> list[Target]:
    """The config's `Labels` controls on a Text (one span project each), in config order."""
    out: list[Target] = []
    for c in config.controls_for("Labels"):
        if c.object is None or c.object.tag.lower() not in TEXT_TAGS:
            continue
        labels = tuple(dict.fromkeys(lab.result_value for lab in c.labels))
        if labels:
            out.append(Target(c, c.object.data_key, labels, True, "spans"))
    return out


def annotation_key(annotation_id: object) -> str | None:
    """`ann-<id>` for an integer id, None otherwise."""
    if isinstance(annotation_id, int) and not isinstance(annotation_id, bool):
        return f"{KEY_PREFIX}{annotation_id}"
    return None


def chosen(target: Target, result: object) -> tuple[str, ...]:
    """The choices an annotation's `result` list makes for `target` (config labels only,
    first occurrence order)."""
    if not isinstance(result, list):
        return ()
    out: list[str] = []
    for item in result:
        if not isinstance(item, Mapping) or item.get("from_name") != target.control.name:
            continue
        if str(item.get("type", "")).lower() != "choices":
            continue
        value = item.get("value")
        picks = value.get("choices") if isinstance(value, Mapping) else None
        for pick in picks if isinstance(picks, list) else ():
            if isinstance(pick, str) and pick in target.labels and pick not in out:
                out.append(pick)
    return tuple(out)


def text_of(task: Mapping[str, Any], target: Target, max_chars: int) -> str | None:
    data = task.get("data")
    text = data.get(target.data_key) if isinstance(data, Mapping) else None
    if not isinstance(text, str) or not text.strip() or len(text) > max_chars:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the classifier would refuse the batch
        return None
    return text


def changes(target: Target, pairs: Iterable[Pair], max_chars: int) -> Changes:
    """Upserts and removals for `target` from (task, annotations) pairs, in order."""
    out = Changes()
    for task, anns in pairs:
        text = text_of(task, target, max_chars)
        for ann in anns:
            key = annotation_key(ann.get("id"))
            if key is None:
                continue
            labels = () if ann.get("was_cancelled") else chosen(target, ann.get("result"))
            ok = 1 <= len(labels) <= (MAX_LABELS_PER_EXAMPLE if target.multi else 1)
            if ok and text is None:
                out.skipped += 1
            if not ok or text is None:
                out.upserts.pop(key, None)
                out.removals.add(key)
                continue
            out.removals.discard(key)
            out.upserts[key] = Example(text, labels, key)
    return out


@dataclass
class SpanChanges:
    """What a batch of annotations does to one span target's examples."""

    upserts: dict[str, SpanExample] = field(default_factory=dict)
    removals: set[str] = field(default_factory=set)
    skipped: int = 0  # annotations without a usable text, or with spans that do not fit it


def spans_of(target: Target, result: object, text: str) -> list[tuple[int, int, str]] | None:
    """The (start, end, label) spans an annotation's `result` marks for `target`, code-point
    offsets checked against `text` (and the span's own `text` when given); None when one does
    not fit or two overlap (the annotation is then not learned from). Labels the config no
    longer has are dropped; a span with several labels keeps the first the config has."""
    if not isinstance(result, list):
        return None
    out: list[tuple[int, int, str]] = []
    for item in result:
        if not isinstance(item, Mapping) or item.get("from_name") != target.control.name:
            continue
        value = item.get("value")
        if str(item.get("type", "")).lower() != "labels" or not isinstance(value, Mapping):
            continue
        start, end, names = value.get("start"), value.get("end"), value.get("labels")
        label = next((n for n in names or () if n in target.labels), None)
        if label is None:
            continue
        if not isinstance(start, int) or not isinstance(end, int):
            return None
        if not 0 <= start < end <= len(text) or not text[start:end].strip():
            return None
        quoted = value.get("text")
        if isinstance(quoted, str) and quoted != text[start:end]:
            return None
        out.append((start, end, label))
    out.sort()
    if any(b[0] < a[1] for a, b in itertools.pairwise(out)):
        return None
    return out


def span_changes(target: Target, pairs: Iterable[Pair], max_chars: int) -> SpanChanges:
    """Upserts and removals for a span `target`: every annotation not skipped is an example,
    with the spans it marks (none is an example too: a text without entities)."""
    out = SpanChanges()
    for task, anns in pairs:
        text = text_of(task, target, max_chars)
        for ann in anns:
            key = annotation_key(ann.get("id"))
            if key is None:
                continue
            spans = None
            if text is not None and not ann.get("was_cancelled"):
                spans = spans_of(target, ann.get("result"), text)
                if spans is None:
                    out.skipped += 1
            elif text is None:
                out.skipped += 1
            if text is None or spans is None:
                out.upserts.pop(key, None)
                out.removals.add(key)
                continue
            out.removals.discard(key)
            out.upserts[key] = SpanExample(text, tuple(spans), key)
    return out


def _task_id(value: object) -> object:
    return value.get("id") if isinstance(value, Mapping) else value


def event_pairs(event: Mapping[str, Any]) -> list[Pair]:
    """(task, [annotation]) pairs of an ANNOTATION(S)_CREATED / ANNOTATION_UPDATED event: each
    annotation with the task its `task` id names (an annotation without its task is left
    out)."""
    anns = event.get("annotation")
    tasks = event.get("task")
    ann_list = anns if isinstance(anns, list) else [anns]
    task_list = tasks if isinstance(tasks, list) else [tasks]
    by_id = {t.get("id"): t for t in task_list if isinstance(t, Mapping)}
    pairs: list[Pair] = []
    for ann in ann_list:
        if not isinstance(ann, Mapping):
            continue
        task = by_id.get(_task_id(ann.get("task")))
        if task is None and len(by_id) == 1 and not isinstance(anns, list):
            task = next(iter(by_id.values()))
        if task is not None:
            pairs.append((task, [ann]))
    return pairs


def task_pairs(tasks: Sequence[object]) -> list[Pair]:
    """(task, its annotations) for exported tasks (`/train`'s `annotations`, the JSON export)."""
    pairs: list[Pair] = []
    for task in tasks:
        if not isinstance(task, Mapping):
            continue
        anns = task.get("annotations")
        if isinstance(anns, list):
            pairs.append((task, [a for a in anns if isinstance(a, Mapping)]))
    return pairs


def deleted_keys(event: Mapping[str, Any]) -> list[str]:
    """Keys of the annotations an ANNOTATIONS_DELETED event names (`{"annotations": [{id}]}`)."""
    anns = event.get("annotations")
    if not isinstance(anns, list):
        anns = [event.get("annotation")]
    keys = (annotation_key(_task_id(a)) for a in anns)
    return [k for k in keys if k is not None]
