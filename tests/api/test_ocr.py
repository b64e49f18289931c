"""POST /v1/ocr on the real PP-OCRv4 models and real photos of text: exact reads of a sign,
the same lines as the reference package (RapidOCR) gives, EXIF, formats, limits, bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from app.main import create_app
from tests.conftest import SKIMAGE_DATA

DATA = Path(__file__).parent.parent / "data" / "ocr"
SIGN = DATA / "scenetext01.jpg"
REF_ENV = "PRELABEL_OCR_REF_PYTHON"


@pytest.fixture(scope="module")
def tc() -> Iterator[TestClient]:
    settings = Settings(models=["ppocr-v4"], default_detector="", default_sam="", default_ner="")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        assert c.get("/readyz").status_code == 200, c.get("/readyz").json()
        yield c


def read(tc: TestClient, data: bytes, **fields: str) -> dict[str, object]:
    r = tc.post("/v1/ocr", files={"file": ("x.jpg", data)}, data=fields)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_sign_reads_its_words_in_order(tc: TestClient) -> None:
    body = read(tc, SIGN.read_bytes())
    assert (body["width"], body["height"]) == (800, 600)
    lines = body["lines"]
    assert isinstance(lines, list)
    assert [ln["text"] for ln in lines] == [
        "NOTICE", "DOUBLE", "PARKING", "PROHIBITED", "AT ALLTIMES",
    ]  # fmt: skip
    notice = lines[0]
    assert notice["polygon"] == [[275, 34], [429, 32], [429, 75], [275, 77]]
    assert notice["score"] > 0.95 and notice["box_score"] > 0.5 and not notice["rotated"]
    # Lines go down the sign: each polygon's top below the previous one's.
    tops = [min(p[1] for p in ln["polygon"]) for ln in lines]
    assert tops == sorted(tops)


def test_an_upside_down_sign_is_turned_and_read(tc: TestClient) -> None:
    """The direction classifier turns each line 180 degrees before reading; lines come in
    reading order of the image as stored (bottom line of the sign first)."""
    buf = io.BytesIO()
    Image.open(SIGN).rotate(180).save(buf, "PNG")
    lines = read(tc, buf.getvalue())["lines"]
    assert isinstance(lines, list)
    assert [ln["text"] for ln in lines] == [
        "AT ALLTIMES", "PROHIBITED", "PARKING", "DOUBLE", "NOTICE",
    ]  # fmt: skip
    assert all(ln["rotated"] for ln in lines)
    assert lines[-1]["polygon"] == [[372, 524], [523, 522], [524, 561], [372, 564]]


def test_words_split_a_line_in_order(tc: TestClient) -> None:
    """`words=true`: each line's words, their polygons inside the line's, in the order the
    text runs (left to right upright, right to left on the upside-down sign)."""
    plain = read(tc, SIGN.read_bytes())["lines"]
    assert isinstance(plain, list) and all(ln["words"] is None for ln in plain)
    buf = io.BytesIO()
    Image.open(SIGN).rotate(180).save(buf, "PNG")
    for data, turned in ((SIGN.read_bytes(), False), (buf.getvalue(), True)):
        lines = read(tc, data, words="true")["lines"]
        assert isinstance(lines, list)
        for ln in lines:
            assert [w["text"] for w in ln["words"]] == ln["text"].split()
            xs = [p[0] for p in ln["polygon"]]
            for w in ln["words"]:
                assert all(min(xs) - 1 <= p[0] <= max(xs) + 1 for p in w["polygon"])
        at, alltimes = next(ln["words"] for ln in lines if ln["text"] == "AT ALLTIMES")
        at_x, all_x = at["polygon"][0][0], alltimes["polygon"][0][0]
        assert (at_x > all_x) if turned else (at_x < all_x)


def test_min_score_drops_weak_lines(tc: TestClient) -> None:
    strict = read(tc, SIGN.read_bytes(), min_score="0.98")["lines"]
    assert isinstance(strict, list)
    assert [ln["text"] for ln in strict] == ["NOTICE", "PROHIBITED"]


def test_exif_orientation_is_applied(tc: TestClient) -> None:
    """The sign stored turned 90 degrees with EXIF orientation 6 (display turned back) reads
    as the upright sign, polygons in the displayed image's pixels."""
    upright = Image.open(SIGN)
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=95, exif=exif)
    body = read(tc, buf.getvalue())
    assert (body["width"], body["height"]) == (800, 600)
    lines = body["lines"]
    assert isinstance(lines, list)
    assert [ln["text"] for ln in lines][:4] == ["NOTICE", "DOUBLE", "PARKING", "PROHIBITED"]
    x0, y0 = lines[0]["polygon"][0]
    assert abs(x0 - 275) <= 3 and abs(y0 - 34) <= 3


def test_an_image_without_text_has_no_lines(tc: TestClient) -> None:
    body = read(tc, (SKIMAGE_DATA / "coffee.png").read_bytes())
    assert body["lines"] == []


def test_labelstudio_ocr_task(tc: TestClient) -> None:
    r = tc.post(
        "/v1/ocr",
        files={"file": ("sign.jpg", SIGN.read_bytes())},
        data={"format": "labelstudio", "file_name": "/data/sign.jpg", "label": "Text"},
    )
    assert r.status_code == 200, r.text
    task = r.json()
    assert task["data"] == {"image": "/data/sign.jpg"}
    results = task["predictions"][0]["result"]
    assert len(results) == 15  # polygon + textarea + labels per line
    poly, text, label = results[:3]
    assert poly["id"] == text["id"] == label["id"]
    assert (poly["type"], text["type"], label["type"]) == ("polygon", "textarea", "labels")
    assert text["value"]["text"] == ["NOTICE"] and label["value"]["labels"] == ["Text"]
    assert poly["value"]["points"][0] == pytest.approx([275 / 800 * 100, 34 / 600 * 100])


def test_jsonl(tc: TestClient) -> None:
    r = tc.post("/v1/ocr", files={"file": ("s.jpg", SIGN.read_bytes())}, data={"format": "jsonl"})
    assert r.status_code == 200 and r.text.endswith("\n") and r.text.count("\n") == 1
    doc = json.loads(r.text)
    assert doc["file_name"] == "image" and doc["lines"][3]["text"] == "PROHIBITED"


@pytest.mark.parametrize(
    ("files", "data", "status"),
    [
        ({"file": ("x.jpg", b"not an image")}, {}, 415),
        ({"file": ("x.jpg", b"")}, {}, 400),
        ({"file": ("x.jpg", SIGN.read_bytes())}, {"model": "nope"}, 404),
        ({"file": ("x.jpg", SIGN.read_bytes())}, {"min_score": "2"}, 422),
        ({"file": ("x.jpg", SIGN.read_bytes())}, {"format": "xml"}, 422),
        ({"file": ("x.jpg", SIGN.read_bytes())}, {"bogus": "1"}, 422),
    ],
)
def test_bad_input_is_a_json_4xx(
    tc: TestClient, files: dict[str, tuple[str, bytes]], data: dict[str, str], status: int
) -> None:
    r = tc.post("/v1/ocr", files=files, data=data)
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]


def test_tiny_and_long_thin_images(tc: TestClient) -> None:
    """A 1 x 1 image and a 2000 x 12 strip go through the scaling and padding steps."""
    for size in ((1, 1), (2000, 12)):
        buf = io.BytesIO()
        Image.new("RGB", size, (255, 255, 255)).save(buf, "PNG")
        body = read(tc, buf.getvalue())
        assert (body["width"], body["height"]) == size and body["lines"] == []


def test_models_batchers_and_metrics(tc: TestClient) -> None:
    [m] = tc.get("/v1/models").json()["models"]
    assert m["name"] == "ppocr-v4" and m["task"] == "ocr" and m["status"] == "ready"
    assert [b["name"] for b in m["batching"]] == ["ppocr-v4/det", "ppocr-v4/rec"]
    assert "Apache-2.0" in m["license"]
    read(tc, SIGN.read_bytes(), priority="bulk")
    text = tc.get("/metrics").text
    assert 'model="ppocr-v4/det"' in text and 'model="ppocr-v4/rec"' in text


def test_same_lines_as_the_reference_package(tc: TestClient) -> None:
    """RapidOCR 1.4.4 (in a venv of its own: it pulls opencv-python) on the same photos."""
    python = os.environ.get(REF_ENV)
    if not python:
        pytest.skip(f"{REF_ENV} unset (scripts/test.sh sets it)")
    images = [SIGN, DATA / "scenetext02.jpg", SKIMAGE_DATA / "page.png", SKIMAGE_DATA / "text.png"]
    script = Path(__file__).with_name("ocr_reference.py")
    out = subprocess.run(
        [python, str(script), *map(str, images)], capture_output=True, text=True, check=True
    )
    refs = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(refs) == len(images)
    compared = 0
    for path, ref in zip(images, refs, strict=True):
        lines = read(tc, path.read_bytes())["lines"]
        assert isinstance(lines, list)
        assert [ln["text"] for ln in lines] == [r[1] for r in ref], path.name
        for ln, (box, _, score) in zip(lines, ref, strict=True):
            flat = [v for pt in ln["polygon"] for v in pt]
            assert flat == pytest.approx([v for pt in box for v in pt], abs=0.01), path.name
            assert ln["score"] == pytest.approx(score, abs=1e-3), path.name
            compared += 1
    assert compared >= 15
