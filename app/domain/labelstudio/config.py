"""Label Studio labeling configs (`<View>...</View>`): the control tags Prelabel can fill, and
the mapping from a model's class names to the labels a control offers.

Only what predictions need is read: control tags `RectangleLabels`, `BrushLabels`,
`PolygonLabels`, `KeyPointLabels`, `Labels`, `Choices`, and for OCR `Rectangle`, `Polygon`
and `TextArea` (tag names case-insensitive, as Label
Studio reads them), each with `name` (a result's `from_name`), `toName` (its `to_name`,
comma-separated when a control serves several objects), the object tags those name (`Image`,
`Text`, ... with their `value`, such as "$image"), the `<Label>` (`<Choice>` for `Choices`)
children, the `smart` / `smartOnly` flags, and for `Choices` `choice="multiple"` and
`perRegion` (also read on `TextArea`). A `<Label>` or `<Choice>` belongs to its nearest
enclosing control. Parsing is linear in the document and bounded (MAX_CONFIG_CHARS,
MAX_ELEMENTS, MAX_DEPTH); `ConfigCache` keeps parsed configs.
"""

from __future__ import annotations

import collections
import hashlib
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring

CONTROL_TAGS = {
    t.lower(): t
    for t in (
        "RectangleLabels",
        "BrushLabels",
        "PolygonLabels",
        "KeyPointLabels",
        "Labels",
        "Choices",
        "Rectangle",
        "Polygon",
        "TextArea",
    )
}
# Controls without labels (OCR regions and transcriptions): skipped, not refused, when they
# lack name or toName (Prelabel only reads them to fill OCR configs).
_OPTIONAL_TAGS = {"rectangle", "polygon", "textarea"}
# Result `type` of each control: Label Studio writes the control's tag name, lower-cased.
RESULT_TYPES = {t: t.lower() for t in CONTROL_TAGS.values()}
_TRUE = {"true", "1", "yes"}
# Python's XML parsers expand internal entities (a "billion laughs" document). defusedxml is
# not a dependency yet, so refuse any DTD: Label Studio configs never need one.
_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
MAX_CONFIG_CHARS = 1_000_000
# A large taxonomy is a few thousand labels; nesting is a few levels.
MAX_ELEMENTS = 50_000
MAX_DEPTH = 100


class LabelConfigError(ValueError):
    """The labeling config is not XML Prelabel accepts (public message)."""


@dataclass(frozen=True)
class ObjectTag:
    """An object tag a control points at: `tag` as written ("Image", "Text"), its `name`, and
    its `value` (the task data key with a leading "$", e.g. "$image")."""

    tag: str
    name: str
    value: str

    @property
    def data_key(self) -> str:
        """The task `data` key the object reads ("$image" -> "image")."""
        return self.value[1:] if self.value.startswith("$") else self.value


@dataclass(frozen=True)
class Label:
    """A `<Label>` (or a `<Choice>`): `value`, the `alias` Label Studio writes into results
    instead of the value when set, `predicted_values`, the model class names that mean this
    label, and `hint` (a `<Choice>`'s tooltip: what the choice means)."""

    value: str
    alias: str | None = None
    predicted_values: tuple[str, ...] = ()
    hint: str | None = None

    @property
    def result_value(self) -> str:
        """What a result names this label by (Label Studio's `alias or value`)."""
        return self.alias or self.value


@dataclass(frozen=True)
class ControlTag:
    """A control tag. `tag` is canonical ("RectangleLabels"); `result_type` is the result
    `type` it produces ("rectanglelabels"); `objects` are the tags `to_names` name, in order
    (a name with no object tag in the config is left out)."""

    tag: str
    name: str
    to_names: tuple[str, ...]
    objects: tuple[ObjectTag, ...]
    labels: tuple[Label, ...]
    smart: bool = False
    smart_only: bool = False
    multiple: bool = False  # Choices: choice="multiple" (several choices per task)
    per_region: bool = False  # Choices, TextArea: perRegion="true" (describes regions)

    @property
    def result_type(self) -> str:
        return RESULT_TYPES[self.tag]

    @property
    def to_name(self) -> str:
        return self.to_names[0]

    @property
    def object(self) -> ObjectTag | None:
        """The first object this control labels (None when the config lacks it)."""
        return self.objects[0] if self.objects else None


@dataclass(frozen=True)
class LabelConfig:
    controls: tuple[ControlTag, ...]
    objects: tuple[ObjectTag, ...]

    def control(self, name: str) -> ControlTag:
        for c in self.controls:
            if c.name == name:
                return c
        raise KeyError(name)

    def controls_for(self, tag: str, object_tag: str | None = None) -> list[ControlTag]:
        """Controls of `tag` (any case), optionally only those on an `object_tag` ("Image")."""
        want = tag.lower()
        return [
            c
            for c in self.controls
            if c.tag.lower() == want
            and (
                object_tag is None
                or (c.object is not None and c.object.tag.lower() == object_tag.lower())
            )
        ]


def parse_label_config(xml: str) -> LabelConfig:
    """Parse a labeling config; raises LabelConfigError for malformed XML, a DTD, more than
    MAX_ELEMENTS elements or MAX_DEPTH levels, or a control without `name` / `toName`.

    Linear in the size of the document: one walk over the tree, each `<Label>` going to its
    nearest enclosing control (a walk per control was quadratic in nested controls). CPU-bound:
    call it off the event loop (`ConfigCache.parse` through `asyncio.to_thread`)."""
    if len(xml) > MAX_CONFIG_CHARS:
        raise LabelConfigError("labeling config is too large")
    if _DTD.search(xml):
        raise LabelConfigError("labeling config must not contain a DOCTYPE or ENTITY")
    try:
        # defusedxml as well as the check above: no DTD, no entity expansion, no external refs.
        root = safe_fromstring(xml, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException) as e:
        raise LabelConfigError(f"labeling config is not well-formed XML: {e}") from e

    objects: dict[str, ObjectTag] = {}
    raw_controls: list[tuple[ET.Element, list[ET.Element]]] = []  # (control, its <Label>s)
    count = 0
    # (element, depth, index in raw_controls of its nearest enclosing control or -1)
    stack: list[tuple[ET.Element, int, int]] = [(root, 1, -1)]
    while stack:
        el, depth, owner = stack.pop()
        count += 1
        if count > MAX_ELEMENTS or depth > MAX_DEPTH:
            raise LabelConfigError(
                f"labeling config has more than {MAX_ELEMENTS} elements or {MAX_DEPTH} levels"
            )
        tag = (el.tag if isinstance(el.tag, str) else "").lower()
        if tag in CONTROL_TAGS:
            owner = len(raw_controls)
            raw_controls.append((el, []))
        elif tag in ("label", "choice") and owner >= 0 and "value" in el.attrib:
            raw_controls[owner][1].append(el)
        elif "name" in el.attrib and el.attrib.get("value", "").startswith("$"):
            name = el.attrib["name"]
            objects.setdefault(name, ObjectTag(str(el.tag), name, el.attrib["value"]))
        stack.extend((child, depth + 1, owner) for child in reversed(_children(el)))
    controls = tuple(
        _control(el, labels, objects)
        for el, labels in raw_controls
        if el.tag.lower() not in _OPTIONAL_TAGS
        or (el.attrib.get("name") and el.attrib.get("toName", "").strip(", "))
    )
    return LabelConfig(controls, tuple(objects.values()))


def _children(el: ET.Element) -> list[ET.Element]:
    return list(el)


def _control(
    el: ET.Element, label_els: list[ET.Element], objects: Mapping[str, ObjectTag]
) -> ControlTag:
    name = el.attrib.get("name", "")
    to_names = tuple(t.strip() for t in el.attrib.get("toName", "").split(",") if t.strip())
    if not name or not to_names:
        raise LabelConfigError(f"<{el.tag}> needs both name and toName")
    labels = tuple(
        Label(
            value=child.attrib["value"],
            alias=child.attrib.get("alias") or None,
            predicted_values=_split(child.attrib.get("predicted_values", "")),
            hint=child.attrib.get("hint") or None,
        )
        for child in label_els
    )
    return ControlTag(
        tag=CONTROL_TAGS[el.tag.lower()],
        name=name,
        to_names=to_names,
        objects=tuple(objects[t] for t in to_names if t in objects),
        labels=labels,
        smart=el.attrib.get("smart", "").lower() in _TRUE,
        smart_only=el.attrib.get("smartOnly", "").lower() in _TRUE,
        multiple=el.attrib.get("choice", "").lower() == "multiple",
        per_region=el.attrib.get("perRegion", "").lower() in _TRUE,
    )


class ConfigCache:
    """Parsed configs (or their LabelConfigError), the last `maxsize` distinct texts, keyed by
    their SHA-256 so the texts themselves are not kept. Thread-safe: `parse` runs on worker
    threads."""

    def __init__(self, maxsize: int = 32) -> None:
        self.maxsize = maxsize
        self._entries: collections.OrderedDict[bytes, LabelConfig | LabelConfigError] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def parse(self, xml: str) -> LabelConfig:
        """`parse_label_config(xml)`, from the cache when seen before (errors too)."""
        key = hashlib.sha256(xml.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            got = self._entries.get(key)
            if got is not None:
                self._entries.move_to_end(key)
        if got is None:
            try:
                got = parse_label_config(xml)
            except LabelConfigError as e:
                got = e
            with self._lock:
                self._entries[key] = got
                while len(self._entries) > self.maxsize:
                    self._entries.popitem(last=False)
        if isinstance(got, LabelConfigError):
            raise LabelConfigError(str(got))
        return got


def _split(csv: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in csv.split(",") if v.strip())


class LabelMap:
    """Model class name -> the label a control names it by in results, or None when the control
    has no such label (a prediction never carries a label the config lacks).

    Matching ignores case (str.casefold) and surrounding spaces. Priority: an entry of `extra`
    (model class -> config label value or alias, e.g. a settings map; entries whose target the
    config lacks are ignored), then a label's own value or alias, then its `predicted_values`.
    Within one level the first label in config order wins."""

    def __init__(self, labels: Iterable[Label], extra: Mapping[str, str] | None = None) -> None:
        self.labels = tuple(labels)
        by_name: dict[str, str] = {}
        by_alias: dict[str, str] = {}
        for lab in self.labels:
            for key in (lab.value, lab.alias or lab.value):
                by_name.setdefault(_key(key), lab.result_value)
            for pv in lab.predicted_values:
                by_alias.setdefault(_key(pv), lab.result_value)
        self._table = {**by_alias, **by_name}
        for cls, target in (extra or {}).items():
            if _key(target) in by_name:
                self._table[_key(cls)] = by_name[_key(target)]

    @classmethod
    def for_control(cls, control: ControlTag, extra: Mapping[str, str] | None = None) -> LabelMap:
        return cls(control.labels, extra)

    def __call__(self, model_class: str) -> str | None:
        return self._table.get(_key(model_class))

    def known(self) -> dict[str, str]:
        """Every model class name (case-folded) this map resolves, with its label."""
        return dict(self._table)


def _key(s: str) -> str:
    return s.strip().casefold()
