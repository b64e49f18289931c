"""Labeling-config parsing and model-class -> config-label mapping."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from app.domain.labelstudio import config as config_module
from app.domain.labelstudio.config import (
    MAX_DEPTH,
    MAX_ELEMENTS,
    ConfigCache,
    Label,
    LabelConfigError,
    LabelMap,
    ObjectTag,
    parse_label_config,
)

CONFIG = """<View>
  <Header value="Label the image and the caption"/>
  <Image name="image" value="$image" zoom="true" zoomControl="true"/>
  <RectangleLabels name="box" toName="image" strokeWidth="3">
    <Label value="Person" predicted_values="man, woman,person" background="#FF0000"/>
    <Label value="Car" alias="vehicle"/>
  </RectangleLabels>
  <BrushLabels name="brush" toName="image">
    <Label value="Person"/>
    <Label value="Background"/>
  </BrushLabels>
  <View style="display: flex">
    <KeyPointLabels name="kp" toName="image" smart="true" smartOnly="True">
      <Label value="Person" smart="true"/>
    </KeyPointLabels>
    <PolygonLabels name="poly" toName="image"><Label value="Person"/></PolygonLabels>
  </View>
  <Choices name="quality" toName="image"><Choice value="good"/></Choices>
  <Text name="caption" value="$caption"/>
  <labels name="ner" toName="caption">
    <Label value="PER" predicted_values="PERSON"/>
    <Label value="LOC" predicted_values="GPE,LOC,FAC"/>
  </labels>
</View>"""


def test_parses_controls_objects_and_labels() -> None:
    cfg = parse_label_config(CONFIG)
    assert [(c.tag, c.name, c.to_name) for c in cfg.controls] == [
        ("RectangleLabels", "box", "image"),
        ("BrushLabels", "brush", "image"),
        ("KeyPointLabels", "kp", "image"),
        ("PolygonLabels", "poly", "image"),
        ("Choices", "quality", "image"),
        ("Labels", "ner", "caption"),
    ]
    assert cfg.objects == (
        ObjectTag("Image", "image", "$image"),
        ObjectTag("Text", "caption", "$caption"),
    )
    box = cfg.control("box")
    assert box.object == ObjectTag("Image", "image", "$image")
    assert box.object is not None and box.object.data_key == "image"
    assert box.result_type == "rectanglelabels"
    assert box.labels == (
        Label("Person", None, ("man", "woman", "person")),
        Label("Car", "vehicle", ()),
    )
    kp = cfg.control("kp")
    assert (kp.smart, kp.smart_only, box.smart) == (True, True, False)
    ner = cfg.control("ner")
    assert ner.result_type == "labels" and ner.object == ObjectTag("Text", "caption", "$caption")
    assert [c.name for c in cfg.controls_for("rectanglelabels", "Image")] == ["box"]
    assert cfg.controls_for("Labels", "Image") == []
    quality = cfg.control("quality")
    assert quality.result_type == "choices" and quality.labels == (Label("good"),)
    assert (quality.multiple, quality.per_region) == (False, False)
    with pytest.raises(KeyError):
        cfg.control("missing")


def test_choices_single_multiple_hints_and_per_region() -> None:
    cfg = parse_label_config(
        '<View><Text name="t" value="$text"/>'
        '<Choices name="intent" toName="t" choice="single-radio">'
        '<Choice value="refund" hint="money back"/><Choice value="Bug report" alias="bug"/>'
        "</Choices>"
        '<choices name="topics" toName="t" choice="multiple"><View><Choice value="a"/></View>'
        '<Choice value="b"/></choices>'
        '<Choices name="region" toName="t" perRegion="true"><Choice value="x"/></Choices></View>'
    )
    intent, topics, region = cfg.controls_for("Choices", "Text")
    assert intent.labels == (Label("refund", hint="money back"), Label("Bug report", "bug"))
    assert [lab.result_value for lab in intent.labels] == ["refund", "bug"]
    assert (intent.multiple, topics.multiple, region.per_region) == (False, True, True)
    assert [lab.value for lab in topics.labels] == ["a", "b"]  # nested in a <View>: still its


def test_several_to_names() -> None:
    cfg = parse_label_config(
        '<View><Image name="a" value="$a"/><Image name="b" value="$b"/>'
        '<RectangleLabels name="r" toName="a, b, missing"><Label value="X"/></RectangleLabels>'
        "</View>"
    )
    r = cfg.control("r")
    assert r.to_names == ("a", "b", "missing")
    assert [o.name for o in r.objects] == ["a", "b"]


@pytest.mark.parametrize(
    "xml, message",
    [
        ("<View><Image name='i' value='$i'>", "not well-formed"),
        ("<View><Labels toName='t'/></View>", "name and toName"),
        ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><View>&lol;</View>', "DOCTYPE"),
        ("<View>" + "<View/>" * 200_000 + "</View>", "too large"),
    ],
)
def test_bad_configs_are_refused(xml: str, message: str) -> None:
    with pytest.raises(LabelConfigError, match=message):
        parse_label_config(xml)


def test_label_map_names_aliases_and_extra() -> None:
    cfg = parse_label_config(CONFIG)
    lm = LabelMap.for_control(cfg.control("box"), extra={"truck": "car", "cat": "Dog"})
    assert lm("person") == "Person"
    assert lm("  PERSON ") == "Person"
    assert lm("Woman") == "Person"  # predicted_values
    assert lm("car") == "vehicle"  # Label Studio writes a label's alias in results
    assert lm("vehicle") == "vehicle"
    assert lm("truck") == "vehicle"  # extra map, target given by value
    assert lm("cat") is None  # extra map to a label the config lacks: ignored
    assert lm("bicycle") is None
    assert set(lm.known().values()) <= {"Person", "vehicle"}


def test_label_names_beat_aliases_and_extra_beats_both() -> None:
    labels = [Label("Cat", predicted_values=("dog",)), Label("Dog")]
    assert LabelMap(labels)("dog") == "Dog"  # an exact label beats another's alias
    assert LabelMap(labels, {"dog": "cat"})("dog") == "Cat"
    ner = LabelMap.for_control(parse_label_config(CONFIG).control("ner"))
    assert [ner(c) for c in ("PERSON", "GPE", "fac", "ORG")] == ["PER", "LOC", "LOC", None]


def nested_controls(depth: int) -> str:
    """Controls nested `depth` deep, a <Label> in each: the shape that made the parse
    quadratic (each control walked its whole subtree)."""
    opening = "".join(f'<Labels name="c{i}" toName="t"><Label value="L{i}"/>' for i in range(depth))
    return f'<View><Text name="t" value="$text"/>{opening}{"</Labels>" * depth}</View>'


def test_each_label_belongs_to_its_nearest_control() -> None:
    cfg = parse_label_config(nested_controls(3))
    assert [[lab.value for lab in c.labels] for c in cfg.controls] == [["L0"], ["L1"], ["L2"]]


def test_element_and_depth_caps() -> None:
    with pytest.raises(LabelConfigError, match="levels"):
        parse_label_config(nested_controls(MAX_DEPTH))
    many = "<View>" + "<Header/>" * MAX_ELEMENTS + "</View>"
    with pytest.raises(LabelConfigError, match="elements"):
        parse_label_config(many)
    parse_label_config("<View>" + "<Header/>" * (MAX_ELEMENTS - 1) + "</View>")  # at the cap


def test_the_parse_visits_each_element_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linear: the work (elements visited) grows with the config, not with its square. Counted
    through ElementTree's child iteration, the one way the parse walks the tree."""
    visits = 0
    real = config_module._children

    def counting(el: ET.Element) -> list[ET.Element]:
        nonlocal visits
        visits += 1
        return real(el)

    monkeypatch.setattr(config_module, "_children", counting)
    for depth in (10, 40):
        visits = 0
        parse_label_config(nested_controls(depth))
        assert visits == 2 * depth + 2  # View, Text, and a Labels and a Label per level


def test_the_cache_keeps_results_and_errors_not_texts() -> None:
    cache = ConfigCache(maxsize=2)
    a = cache.parse(CONFIG)
    assert cache.parse(CONFIG) is a
    for _ in range(2):
        with pytest.raises(LabelConfigError):
            cache.parse("<View")
    cache.parse(nested_controls(2))
    assert cache.parse(CONFIG) is not a  # evicted (two entries at most)
    assert all(isinstance(k, bytes) and len(k) == 32 for k in cache._entries)
