"""Pascal VOC XML: one annotation file per image, boxes only.

VOC counts pixels from 1 and its bndbox is inclusive: xmin..xmax are the first and last pixel
columns the box covers. Prelabel boxes [x1, y1, x2, y2] are continuous (pixel (x, y) spans
[x, x+1) x [y, y+1), 0-based), so the box covers 0-based columns floor(x1) .. ceil(x2) - 1:

    xmin = floor(x1) + 1      xmax = ceil(x2)      (likewise for y)

i.e. the smallest whole-pixel box that contains the box, clipped to the image. `from_voc`
inverts it exactly: x1 = xmin - 1, x2 = xmax. A box on whole pixels therefore round-trips
unchanged; any other box comes back grown outwards by less than one pixel per side.

Masks and scores have no place in VOC's XML (VOC's masks are separate PNGs) and are not
written. Text is escaped by ElementTree (&, <, >); characters XML 1.0 cannot hold (most control
characters) raise ValueError rather than produce a file no parser will read, and so does CR,
which parsers turn into LF.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring

from app.domain.formats.records import ImageRecord, ObjectRecord
from app.geometry import BoxXYXY, PixelBoxXYXY

# Control characters XML 1.0 forbids, plus CR: legal, but parsers turn it into LF, so it
# would not survive a round trip.
_NOT_XML = re.compile("[\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]")


def to_voc(image: ImageRecord, folder: str = "images") -> str:
    """The VOC XML document for one image (UTF-8 text, no XML declaration), with
    `<annotation>`: folder, filename, size (width, height, depth 3), segmented 0, then one
    `<object>` per object: name, pose Unspecified, truncated 0, difficult 0, and
    bndbox (xmin, ymin, xmax, ymax) as 1-based inclusive integers (see the module docstring)."""
    root = ET.Element("annotation")
    _sub(root, "folder", folder)
    _sub(root, "filename", image.file_name)
    size = ET.SubElement(root, "size")
    _sub(size, "width", str(image.width))
    _sub(size, "height", str(image.height))
    _sub(size, "depth", "3")
    _sub(root, "segmented", "0")
    for obj in image.objects:
        el = ET.SubElement(root, "object")
        _sub(el, "name", obj.label)
        _sub(el, "pose", "Unspecified")
        _sub(el, "truncated", "0")
        _sub(el, "difficult", "0")
        bndbox = ET.SubElement(el, "bndbox")
        for tag, value in zip(
            ("xmin", "ymin", "xmax", "ymax"),
            _to_pixels(obj.box, image.width, image.height),
            strict=True,
        ):
            _sub(bndbox, tag, str(value))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def from_voc(xml: str) -> ImageRecord:
    """Parse one VOC XML document. Boxes come back as [xmin - 1, ymin - 1, xmax, ymax] pixels;
    coordinates written as decimals (some tools do) are accepted. `folder` is not part of the
    record and is ignored; raises ValueError when a required element is missing."""
    try:
        root = safe_fromstring(xml, forbid_dtd=True)  # VOC files come from users: no DTDs
    except (ET.ParseError, DefusedXmlException) as e:
        raise ValueError(f"not XML: {e}") from e
    objects = []
    for el in root.iter("object"):
        b = [float(_text(el, f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")]
        objects.append(ObjectRecord(_text(el, "name"), (b[0] - 1, b[1] - 1, b[2], b[3])))
    return ImageRecord(
        _text(root, "filename"),
        int(_text(root, "size/width")),
        int(_text(root, "size/height")),
        tuple(objects),
    )


def _to_pixels(box: BoxXYXY, width: int, height: int) -> PixelBoxXYXY:
    x1, y1, x2, y2 = box
    xmin = min(max(math.floor(x1) + 1, 1), width)
    ymin = min(max(math.floor(y1) + 1, 1), height)
    # A zero-width box still covers the pixel it sits in, so xmax never falls below xmin.
    xmax = min(max(math.ceil(x2), xmin), width)
    ymax = min(max(math.ceil(y2), ymin), height)
    return xmin, ymin, xmax, ymax


def _sub(parent: ET.Element, tag: str, text: str) -> None:
    if _NOT_XML.search(text):
        raise ValueError(f"{tag} {text!r} holds a character XML cannot represent")
    ET.SubElement(parent, tag).text = text


def _text(el: ET.Element, path: str) -> str:
    found = el.find(path)
    if found is None or found.text is None:
        raise ValueError(f"VOC XML lacks <{path}>")
    return found.text
