"""Pascal VOC XML: well-formed documents, the 1-based inclusive box convention, and odd names."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from app.domain.formats.records import ImageRecord, ObjectRecord
from app.domain.formats.voc import from_voc, to_voc

Records = tuple[ImageRecord, ...]


def text(el: ET.Element, path: str) -> str:
    found = el.find(path)
    assert found is not None and found.text is not None, path
    return found.text


def test_real_records_write_well_formed_voc(real_records: Records) -> None:
    for record in real_records:
        root = ET.fromstring(to_voc(record, folder="JPEGImages"))
        assert root.tag == "annotation"
        assert text(root, "folder") == "JPEGImages"
        assert text(root, "filename") == record.file_name
        assert [text(root, f"size/{t}") for t in ("width", "height", "depth")] == [
            str(record.width),
            str(record.height),
            "3",
        ]
        objects = root.findall("object")
        assert len(objects) == len(record.objects)
        for el, obj in zip(objects, record.objects, strict=True):
            assert text(el, "name") == obj.label
            assert (text(el, "pose"), text(el, "truncated"), text(el, "difficult")) == (
                "Unspecified",
                "0",
                "0",
            )
            xmin, ymin, xmax, ymax = (
                int(text(el, f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")
            )
            x1, y1, x2, y2 = obj.box
            # The convention, restated: the 1-based inclusive pixels the box touches.
            assert (xmin, ymin) == (math.floor(x1) + 1, math.floor(y1) + 1)
            assert (xmax, ymax) == (
                min(math.ceil(x2), record.width),
                min(math.ceil(y2), record.height),
            )
            assert 1 <= xmin <= xmax <= record.width and 1 <= ymin <= ymax <= record.height


def test_real_boxes_round_trip_to_the_enclosing_pixel_box(real_records: Records) -> None:
    for record in real_records:
        xml = to_voc(record)
        back = from_voc(xml)
        assert (back.file_name, back.width, back.height) == (
            record.file_name,
            record.width,
            record.height,
        )
        assert [o.label for o in back.objects] == [o.label for o in record.objects]
        for o, p in zip(back.objects, record.objects, strict=True):
            assert o.score is None and o.mask is None  # VOC XML carries neither
            # Grown outwards to whole pixels: contains the original, by less than a pixel.
            assert all(0 <= p.box[i] - o.box[i] < 1 for i in (0, 1))
            assert all(0 <= o.box[i] - p.box[i] < 1 for i in (2, 3))
            assert o.box == tuple(float(v) for v in o.box)
        assert to_voc(back) == xml  # and from there on the round trip is exact


def test_whole_pixel_boxes_round_trip_exactly() -> None:
    record = ImageRecord(
        "a.jpg",
        64,
        48,
        (
            ObjectRecord("dog", (0.0, 0.0, 64.0, 48.0)),
            ObjectRecord("cat", (10.0, 5.0, 11.0, 6.0)),  # one pixel: xmin == xmax == 11
            ObjectRecord("dog", (3.0, 7.0, 30.0, 20.0)),
        ),
    )
    assert from_voc(to_voc(record)) == record
    root = ET.fromstring(to_voc(record))
    cat = root.findall("object")[1]
    assert [text(cat, f"bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")] == [
        "11",
        "6",
        "11",
        "6",
    ]


def test_fractional_and_overshooting_boxes() -> None:
    record = ImageRecord(
        "a.jpg",
        64,
        48,
        (
            ObjectRecord("dog", (2.5, 3.2, 7.5, 8.9)),
            ObjectRecord("dog", (-0.4, 40.2, 64.3, 48.0)),
            ObjectRecord("dog", (5.0, 5.0, 5.0, 5.0)),  # degenerate: still one pixel
        ),
    )
    boxes = [
        [text(o, f"bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")]
        for o in ET.fromstring(to_voc(record)).findall("object")
    ]
    assert boxes == [["3", "4", "8", "9"], ["1", "41", "64", "48"], ["6", "6", "6", "6"]]
    assert [o.box for o in from_voc(to_voc(record)).objects] == [
        (2.0, 3.0, 8.0, 9.0),
        (0.0, 40.0, 64.0, 48.0),
        (5.0, 5.0, 6.0, 6.0),
    ]


def test_odd_characters_in_names_survive() -> None:
    record = ImageRecord(
        "dir/R&D <draft> \"v2\" 'ok' é 猫.jpg",
        10,
        10,
        (ObjectRecord('a<b & c>d "q" 猫', (1.0, 1.0, 5.0, 5.0)),),
    )
    xml = to_voc(record)
    assert "R&amp;D &lt;draft&gt;" in xml
    assert from_voc(xml) == record
    assert text(ET.fromstring(xml), "filename") == record.file_name


@pytest.mark.parametrize("name", ["bad\x00name.jpg", "bell\x07.jpg", "cr\r.jpg"])
def test_characters_xml_cannot_hold_raise(name: str) -> None:
    with pytest.raises(ValueError, match="XML cannot represent"):
        to_voc(ImageRecord(name, 10, 10))
    with pytest.raises(ValueError, match="XML cannot represent"):
        to_voc(ImageRecord("ok.jpg", 10, 10, (ObjectRecord(name, (1.0, 1.0, 2.0, 2.0)),)))


def test_reads_decimal_coordinates_and_rejects_broken_documents() -> None:
    xml = (
        "<annotation><filename>x.jpg</filename><size><width>20</width><height>10</height>"
        "<depth>3</depth></size><object><name>cat</name><bndbox><xmin>2.0</xmin>"
        "<ymin>3</ymin><xmax>8.0</xmax><ymax>9</ymax></bndbox></object></annotation>"
    )
    record = from_voc(xml)
    assert record == ImageRecord("x.jpg", 20, 10, (ObjectRecord("cat", (1.0, 2.0, 8.0, 9.0)),))
    with pytest.raises(ValueError, match="not XML"):
        from_voc("<annotation><filename>")
    with pytest.raises(ValueError, match="lacks <size/width>"):
        from_voc("<annotation><filename>x.jpg</filename></annotation>")
