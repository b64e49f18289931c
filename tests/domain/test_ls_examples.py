"""Label Studio annotations -> classifier examples: which controls are learned, how each
annotation becomes an example (or a removal), and the event / export shapes Label Studio 1.23.2
sends."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.classify.projects import Example
from app.domain.classify.spans import SpanExample
from app.domain.labelstudio.config import parse_label_config
from app.domain.labelstudio.examples import (
    Pair,
    Target,
    changes,
    chosen,
    deleted_keys,
    event_pairs,
    span_changes,
    span_targets,
    targets,
    task_pairs,
)
from app.domain.labelstudio.learning import project_uid

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Image name="image" value="$image"/>
  <Choices name="intent" toName="text">
    <Choice value="Refund request" alias="refund"/><Choice value="bug"/><Choice value="praise"/>
  </Choices>
  <Choices name="topics" toName="text" choice="multiple">
    <Choice value="billing"/><Choice value="shipping"/>
  </Choices>
  <Choices name="one" toName="text"><Choice value="lonely"/></Choices>
  <Choices name="photo" toName="image"><Choice value="a"/><Choice value="b"/></Choices>
  <Choices name="region" toName="text" perRegion="true"><Choice value="a"/><Choice value="b"/>
  </Choices>
</View>"""


def target(name: str) -> Target:
    [t] = [t for t in targets(parse_label_config(CONFIG)) if t.control.name == name]
    return t


def pick(control: str, *choices: str) -> dict[str, Any]:
    return {
        "from_name": control,
        "to_name": "text",
        "type": "choices",
        "value": {"choices": list(choices)},
    }


def task(tid: int, text: object = "Please give my money back") -> dict[str, Any]:
    return {"id": tid, "data": {"text": text}}


def test_targets_are_choices_on_a_text_with_enough_choices() -> None:
    found = targets(parse_label_config(CONFIG))
    assert [(t.control.name, t.labels, t.multi, t.data_key) for t in found] == [
        ("intent", ("refund", "bug", "praise"), False, "text"),  # results name the alias
        ("topics", ("billing", "shipping"), True, "text"),
    ]
    # One single choice is no classifier; an Image and perRegion Choices are not text labels.


def test_each_annotation_is_an_example_keyed_by_its_id() -> None:
    anns = [
        {"id": 7, "result": [pick("intent", "refund")]},
        {"id": 8, "result": [pick("intent", "bug"), pick("topics", "billing")]},
    ]
    ch = changes(target("intent"), [(task(1), anns)], 1000)
    assert ch.upserts == {
        "ann-7": Example("Please give my money back", ("refund",), "ann-7"),
        "ann-8": Example("Please give my money back", ("bug",), "ann-8"),
    }
    assert ch.removals == set() and ch.skipped == 0
    topics = changes(target("topics"), [(task(1), anns)], 1000)
    assert list(topics.upserts) == ["ann-8"] and topics.removals == {"ann-7"}


@pytest.mark.parametrize(
    "annotation",
    [
        {"id": 7, "result": [pick("intent", "refund")], "was_cancelled": True},  # skipped
        {"id": 7, "result": []},  # its choice cleared by an update
        {"id": 7, "result": [pick("intent", "Refund request")]},  # the value, not the alias
        {"id": 7, "result": [pick("intent", "refund", "bug")]},  # two on a single choice
        {"id": 7, "result": [{**pick("intent", "refund"), "type": "labels"}]},
        {"id": 7, "result": "not a list"},
    ],
)
def test_an_annotation_without_a_usable_choice_removes_its_example(
    annotation: dict[str, Any],
) -> None:
    ch = changes(target("intent"), [(task(1), [annotation])], 1000)
    assert ch.upserts == {} and ch.removals == {"ann-7"}


def test_multi_choice_keeps_config_labels_in_order() -> None:
    ann = {"id": 3, "result": [pick("topics", "shipping", "nope", "billing", "shipping")]}
    ch = changes(target("topics"), [(task(1), [ann])], 1000)
    assert ch.upserts["ann-3"].labels == ("shipping", "billing")
    assert chosen(target("topics"), [pick("other", "billing")]) == ()


@pytest.mark.parametrize("text", [None, 42, "   ", "x" * 1001, "lone \ud800 surrogate"])
def test_tasks_without_a_usable_text_are_skipped(text: object) -> None:
    ch = changes(
        target("intent"), [(task(1, text), [{"id": 5, "result": [pick("intent", "bug")]}])], 1000
    )
    assert ch.upserts == {} and ch.removals == {"ann-5"} and ch.skipped == 1


def test_later_annotations_win_and_ids_must_be_integers() -> None:
    pairs: list[Pair] = [
        (task(1), [{"id": 9, "result": [pick("intent", "bug")]}]),
        (task(1), [{"id": 9, "result": [pick("intent", "praise")]}]),
        (task(1), [{"id": "9", "result": [pick("intent", "bug")]}, {"result": []}]),
        (task(2), [{"id": True, "result": [pick("intent", "bug")]}]),
    ]
    ch = changes(target("intent"), pairs, 1000)
    assert {k: e.labels for k, e in ch.upserts.items()} == {"ann-9": ("praise",)}


def test_event_shapes() -> None:
    """ANNOTATION_CREATED: one annotation and its task; ANNOTATIONS_CREATED: lists."""
    one = {"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "task": 5}, "task": task(5)}
    assert event_pairs(one) == [(task(5), [{"id": 1, "task": 5}])]
    many = {
        "annotation": [{"id": 1, "task": 5}, {"id": 2, "task": 6}, {"id": 3, "task": 99}, "x"],
        "task": [task(5), task(6)],
    }
    assert [(t["id"], [a["id"] for a in anns]) for t, anns in event_pairs(many)] == [
        (5, [1]),
        (6, [2]),
    ]
    assert event_pairs({"annotation": None, "task": "x"}) == []
    deleted = {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 4}, {"id": "x"}, 5]}
    assert deleted_keys(deleted) == ["ann-4", "ann-5"]
    exported = [{**task(5), "annotations": [{"id": 1}, "junk"]}, {"id": 6}, "junk"]
    assert task_pairs(exported) == [({**task(5), "annotations": [{"id": 1}, "junk"]}, [{"id": 1}])]


def test_project_uid_matches_label_studio() -> None:
    """ml/api_connector.py: f"{project.id}.{int(project.created_at.timestamp())}"."""
    about = {"id": 12, "created_at": "2026-12-06T02:20:31.918273Z"}
    assert project_uid(about) == "12.1796523631"
    assert project_uid({"id": 12, "created_at": "2026-12-06T02:20:31"}) == "12.1796523631"
    assert project_uid({"id": "12", "created_at": "2026-12-06T02:20:31Z"}) is None
    assert project_uid({"id": 12, "created_at": "yesterday"}) is None


SPANS = """<View><Text name="text" value="$text"/>
  <Labels name="ner" toName="text"><Label value="Drug" alias="DRUG"/><Label value="DOSE"/></Labels>
  <Labels name="img" toName="image"><Label value="x"/></Labels><Image name="image" value="$img"/>
</View>"""
DOSE_TEXT = "Take 5 mg of aspirin 🙂 twice daily"


def mark(start: int, end: int, *labels: str, text: str | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"start": start, "end": end, "labels": list(labels)}
    if text is not None:
        value["text"] = text
    return {"from_name": "ner", "to_name": "text", "type": "labels", "value": value}


def span_target() -> Target:
    [t] = span_targets(parse_label_config(SPANS))
    return t


def test_span_targets_are_labels_on_a_text() -> None:
    t = span_target()
    assert (t.control.name, t.labels, t.kind) == ("ner", ("DRUG", "DOSE"), "spans")


def test_annotated_spans_become_code_point_triples() -> None:
    ann = {
        "id": 4,
        "result": [
            mark(13, 20, "DRUG", text="aspirin"),
            mark(5, 9, "DOSE"),
            mark(23, 28, "Nope"),  # a label the config no longer has: dropped
            pick("intent", "bug"),  # another control
        ],
    }
    ch = span_changes(span_target(), [(task(1, DOSE_TEXT), [ann])], 1000)
    assert ch.upserts == {
        "ann-4": SpanExample(DOSE_TEXT, ((5, 9, "DOSE"), (13, 20, "DRUG")), "ann-4")
    }
    empty = span_changes(span_target(), [(task(1, DOSE_TEXT), [{"id": 5, "result": []}])], 1000)
    assert empty.upserts["ann-5"].spans == ()  # a text without entities teaches that too


@pytest.mark.parametrize(
    "result",
    [
        [mark(13, 20, "DRUG", text="aspiri")],  # its text is not the text's slice
        [mark(13, 99, "DRUG")],  # past the end
        [mark(4, 5, "DRUG")],  # whitespace only
        [mark(5, 9, "DOSE"), mark(7, 20, "DRUG")],  # overlapping
        [mark("5", 9, "DOSE")],  # type: ignore[arg-type]
    ],
)
def test_spans_that_do_not_fit_the_text_drop_the_annotation(result: list[Any]) -> None:
    ann = {"id": 4, "result": result}
    ch = span_changes(span_target(), [(task(1, DOSE_TEXT), [ann])], 1000)
    assert ch.upserts == {} and ch.removals == {"ann-4"} and ch.skipped == 1
    skipped = {"id": 4, "result": [mark(5, 9, "DOSE")], "was_cancelled": True}
    ch = span_changes(span_target(), [(task(1, DOSE_TEXT), [skipped])], 1000)
    assert ch.upserts == {} and ch.removals == {"ann-4"} and ch.skipped == 0
