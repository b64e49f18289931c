"""Hostile input on every route, after which a good request still succeeds: decompression bombs
in each format (refused from the header, with no memory taken for their pixels), zlib bombs,
multi-frame files, truncated files, wrong content types, bodies over the cap, deeply nested
JSON, invalid UTF-8, lone surrogates, NUL bytes, NaN and huge numbers, and the per-request caps.

test_errors.py covers the basic cases (empty and half files, a text file, one PNG bomb, bad
base64, unknown fields and models); this file goes format by format and route by route."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from app.domain.labelstudio.predict import image_key
from app.domain.ner import NerService
from app.errors import ValidationFailed
from app.main import create_app
from tests.api import bombs
from tests.conftest import SKIMAGE_DATA, runtime_of

REPO = Path(__file__).resolve().parents[2]
JSON = {"content-type": "application/json"}


def assert_error(r: httpx2.Response, status: int, code: str | None = None) -> None:
    """A JSON error body of exactly {"error": {"code", "message"}}, and no traceback."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"] and (code is None or body["error"]["code"] == code), body
    assert "Traceback" not in r.text and 'File "' not in r.text


def assert_serving(client: TestClient, jpeg: bytes) -> None:
    r = client.post("/v1/detect", files={"file": ("a.jpg", jpeg, "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["detections"]


def upload(client: TestClient, route: str, body: bytes, **fields: str | bytes) -> httpx2.Response:
    """A multipart upload of `body` as `file`, with `fields` as form fields (TestClient's
    responses are httpx2's)."""
    return client.post(route, files={"file": ("x.bin", body, "image/jpeg")}, data=fields)


# --- decompression bombs ------------------------------------------------------------------

BOMBS = bombs.bombs(50_000, 50_000)  # 2.5 Gpx: 7.5 GB as RGB
UNDER_PILLOW = bombs.bombs(12_000, 12_000)  # 144 Mpx: under Pillow's own hard limit (179 Mpx)
OVER_CAP = bombs.bombs(7000, 6000)  # 42 Mpx: under Pillow's own limit, over ours (40 Mpx)


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bomb_is_413_on_every_image_route(
    client: TestClient, astronaut_jpeg: bytes, name: str
) -> None:
    body = BOMBS[name]
    assert len(body) < 1024
    assert_error(upload(client, "/v1/detect", body), 413, "payload_too_large")
    r = client.post("/v1/sam/embed", json={"image": base64.b64encode(body).decode()})
    assert_error(r, 413, "payload_too_large")
    assert_error(upload(client, "/v1/sam/segment", body, box="[1, 1, 9, 9]"), 413)
    r = upload(client, "/v1/detect", OVER_CAP[name])
    assert_error(r, 413, "payload_too_large")
    assert "7000x6000" in r.json()["error"]["message"]
    assert_serving(client, astronaut_jpeg)


MEASURE = """
import json, pathlib, sys
from app.domain.images import ImageLimits, decode_image

def peaks():  # kB: highest virtual size and highest resident size so far
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return int(status["VmPeak"].split()[0]), int(status["VmHWM"].split()[0])

limits = ImageLimits(20 << 20, 40_000_000)
out = {}
for path in sorted(pathlib.Path(sys.argv[1]).iterdir()):  # "zz-control" last: it raises both
    (vm0, rss0), error = peaks(), None
    try:
        decode_image(path.read_bytes(), limits)
    except Exception as e:
        error = type(e).__name__
    vm1, rss1 = peaks()
    out[path.name] = [error, (vm1 - vm0) / 1024, (rss1 - rss0) / 1024]
print(json.dumps(out))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_bombs_take_no_memory_for_their_pixels(tmp_path: Path) -> None:
    """In a fresh process (high-water marks start low): refusing each bomb raises neither the
    peak virtual size nor the peak RSS by 50 MB, although each declares 7.5 GB or 432 MB of RGB.
    Pillow refuses the first kind itself; the second gets past it, and an animated WebP of that
    size made libwebp reserve 1.1 GB of canvas at open (see `webp_size`). The zlib bombs
    inflate to 1 GiB each, and stay as small. The control, a real 4000 x 3000 PNG, must raise
    both by its 36 MB of RGB, or the meter is broken."""
    files = {f"bomb-{k}": v for k, v in BOMBS.items()}
    files |= {f"bomb-12k-{k}": v for k, v in UNDER_PILLOW.items()}
    files |= {f"zlib-{k}": v for k, v in bombs.zlib_bombs().items()}
    files["warm-up"] = bombs.encode("PNG")  # first decode imports and sets up Pillow's plugins
    files["zz-control"] = bombs.png(4000, 3000, idat=b"\0" * (4000 * 3 + 1) * 3000)
    for name, body in files.items():
        (tmp_path / name).write_bytes(body)
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(done.stdout)
    for name in [n for n in got if n.startswith("bomb-")]:
        error, vm, rss = got[name]
        assert error == "ImageTooLarge" and vm < 50 and rss < 50, (name, got[name])
    assert len([n for n in got if n.startswith("bomb-")]) == 2 * len(BOMBS)
    assert got["zlib-idat"][0] is None  # pixel data past the image's end is never inflated
    assert got["zlib-ztxt"][0] == got["zlib-iccp"][0] == "InvalidImage"
    assert all(got[f"zlib-{k}"][1] < 50 and got[f"zlib-{k}"][2] < 50 for k in ("idat", "ztxt"))
    assert got["zlib-iccp"][1] < 50 and got["zlib-iccp"][2] < 50
    error, vm, rss = got["zz-control"]
    assert error is None and vm > 30 and rss > 30, got["zz-control"]


def test_multi_frame_files_decode_their_first_frame_only(
    client: TestClient, astronaut_jpeg: bytes
) -> None:
    astronaut = Image.open(io.BytesIO(astronaut_jpeg)).convert("RGB")
    first = astronaut.resize((200, 150))
    frames = [first] + [
        Image.new("RGB", (200, 150), (i % 200, i // 200 * 99, 9)) for i in range(1, 400)
    ]
    for fmt, kw in (("GIF", {}), ("WEBP", {"lossless": False}), ("MPO", {})):
        buf = io.BytesIO()
        first.save(buf, fmt, save_all=True, append_images=frames[1:], **kw)
        written = Image.open(io.BytesIO(buf.getvalue()))
        assert getattr(written, "n_frames", 1) > 50  # WebP merges a few
        r = upload(client, "/v1/detect", buf.getvalue())
        assert r.status_code == 200, (fmt, r.text)
        assert (r.json()["width"], r.json()["height"]) == (200, 150)
    assert_serving(client, astronaut_jpeg)


# --- truncated files and wrong content types ----------------------------------------------

FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO")


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_file_of_every_format(
    client: TestClient, astronaut_jpeg: bytes, fmt: str
) -> None:
    photo = Image.open(io.BytesIO(astronaut_jpeg)).convert("RGB").resize((128, 128))
    buf = io.BytesIO()
    photo.save(buf, fmt)
    whole = buf.getvalue()
    assert upload(client, "/v1/detect", whole).status_code == 200
    for cut in (len(whole) // 2, len(whole) * 3 // 4):  # inside the pixel data
        assert_error(upload(client, "/v1/detect", whole[:cut]), 400, "invalid_image")
    for cut in (40, 12, 3):  # too short to be told apart from random bytes: 400 or 415
        r = upload(client, "/v1/sam/embed", whole[:cut])
        assert r.status_code in (400, 415), (fmt, cut, r.text)
        assert_error(r, r.status_code)
    assert_serving(client, astronaut_jpeg)


NOT_IMAGES = {
    "pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><rect/></svg>',
    "html-named-jpg": b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>",
    "zip": b"PK\x03\x04" + b"\0" * 60,
    "ppm": b"P6\n2 2\n255\n" + b"\0" * 12,
}


def test_wrong_content_types(client: TestClient, astronaut_jpeg: bytes) -> None:
    for name, body in NOT_IMAGES.items():
        assert_error(upload(client, "/v1/detect", body), 415, "unsupported_media_type")
        r = client.post("/v1/sam/embed", json={"image": base64.b64encode(body).decode()})
        assert_error(r, 415, "unsupported_media_type")
        assert name
    jpeg = astronaut_jpeg
    cases = [
        ("/v1/detect", {"content": b"hello", "headers": {"content-type": "text/plain"}}, 415),
        ("/v1/detect", {"content": b"a=1", "headers": {"content-type": "text/xml"}}, 415),
        ("/v1/detect", {"data": {"score_threshold": "0.5"}}, 415),  # urlencoded
        ("/v1/detect", {"files": {"score_threshold": (None, "0.5")}}, 422),  # no file part
        ("/v1/detect", {"files": [("file", ("a", jpeg)), ("file", ("b", jpeg))]}, 422),
        ("/v1/sam/segment", {"files": {"image": ("a.jpg", jpeg)}}, 422),  # wrong part name
        ("/v1/ner", {"content": b"Tim Cook", "headers": {"content-type": "text/plain"}}, 422),
        ("/v1/ner", {"files": {"file": ("a.txt", b"Tim Cook")}}, 422),
        ("/predict", {"content": b"<tasks/>", "headers": {"content-type": "text/xml"}}, 422),
        ("/webhook", {"files": {"file": ("a", b"{}")}}, 422),
        ("/setup", {"content": b"[]", "headers": JSON}, 422),
    ]
    for route, kwargs, status in cases:
        assert_error(client.post(route, **kwargs), status)  # type: ignore[arg-type]
    assert_serving(client, astronaut_jpeg)


# --- bodies over the cap ------------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> Iterator[TestClient]:
    """An app with no models and a 64 KiB upload cap (bodies capped at ~1.1 MB)."""
    settings = Settings(
        models=[], default_detector="", default_sam="", default_ner="", max_upload_bytes=65536
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("route", ["/v1/ner", "/predict", "/webhook", "/setup", "/v1/sam/segment"])
def test_huge_json_is_413_with_and_without_content_length(small: TestClient, route: str) -> None:
    body = b'{"texts": ["' + b"a" * 2_000_000 + b'"]}'

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    assert_error(small.post(route, content=body, headers=JSON), 413, "payload_too_large")
    assert_error(small.post(route, content=chunks(), headers=JSON), 413, "payload_too_large")
    assert small.get("/livez").status_code == 200


def test_huge_multipart_is_413(small: TestClient) -> None:
    big = b"\xff\xd8" + b"\0" * 2_000_000
    assert_error(upload(small, "/v1/detect", big), 413, "payload_too_large")
    r = small.post("/v1/detect", files={"file": ("a.jpg", b"\xff\xd8" + b"\0" * 70_000)})
    assert_error(r, 413, "payload_too_large")  # under the body cap, over the image cap


# --- JSON that Python's json module gets wrong ---------------------------------------------

# Each route's body with a hole for one value (%s); every one of these must be a 422.
JSON_ROUTES = {
    "/v1/detect": b'{"image": "AAAA", "classes": %s}',
    "/v1/sam/embed": b'{"image": %s}',
    "/v1/sam/segment": b'{"embedding_id": "minisam.x", "points": [{"x": %s, "y": 1}]}',
    "/v1/ner": b'{"texts": ["Paris", %s]}',
    "/setup": b'{"project": "9.1", "schema": "<View/>", "extra_params": %s}',
    "/predict": b'{"project": "9.1", "label_config": "<View/>", "tasks": [{"data": %s}]}',
    "/webhook": b'{"action": "ANNOTATION_CREATED", "annotation": %s}',
}
BAD_JSON_VALUES = {
    "nested-100k": b"[" * 100_000 + b"]" * 100_000,
    "nested-objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "lone-high-surrogate": b'"Paris \\ud800"',
    "lone-low-surrogate": b'"\\udfff Paris"',
    "invalid-utf8": b'"Paris \xff\xfe"',
    "utf8-encoded-surrogate": b'"\xed\xa0\x80"',
    "overlong-utf8": b'"\xc0\xaf"',
    "nan": b"NaN",
    "infinity": b"-Infinity",
    "int-5000-digits": b"1" + b"0" * 5000,
    "trailing-garbage": b'"x"} {"y": 1',
}


@pytest.mark.parametrize("value", sorted(BAD_JSON_VALUES))
def test_bad_json_is_422_on_every_json_route(
    client: TestClient, astronaut_jpeg: bytes, value: str
) -> None:
    for route, template in JSON_ROUTES.items():
        body = template % BAD_JSON_VALUES[value]
        assert_error(client.post(route, content=body, headers=JSON), 422, "validation_error")
        assert "not valid JSON" in client.post(route, content=body, headers=JSON).text
    for field in ("points", "box", "classes"):  # JSON inside multipart fields
        if value == "invalid-utf8" or (field == "classes" and value != "nested-100k"):
            continue  # form fields are decoded leniently; `classes` also takes "a,b"
        r = upload(client, "/v1/sam/segment", astronaut_jpeg, **{field: BAD_JSON_VALUES[value]})
        assert_error(r, 422, "validation_error")
    assert_serving(client, astronaut_jpeg)


def test_json_within_the_limits_still_works(client: TestClient) -> None:
    nested = "[" * 150 + "]" * 150  # deep, but under the parser's 200 levels
    r = client.post("/webhook", content=f'{{"action": "X", "a": {nested}}}', headers=JSON)
    assert r.status_code == 200, r.text
    text = "Tim Cook \U0001f600 visited Paris."  # a surrogate pair in JSON is one code point
    raw = json.dumps({"texts": [text]}, ensure_ascii=True)
    assert "\\ud83d\\ude00" in raw
    [result] = client.post("/v1/ner", content=raw, headers=JSON).json()["results"]
    assert {(s["text"], text[s["start"] : s["end"]]) for s in result["spans"]} >= {
        ("Paris", "Paris")
    }


def test_invalid_utf8_in_multipart_fields(client: TestClient, astronaut_jpeg: bytes) -> None:
    """Form fields that are not UTF-8 are read as Latin-1 (Starlette), so they arrive as odd
    but valid text: an unknown model, an unknown class, an extra field."""
    parts = [(b"model", b"\xff\xfe", 404), (b"classes", b"\xed\xa0\x80", 422)]
    parts += [(b"\xff\xfe", b"1", 422), (b"score_threshold", b"0.\xff", 422)]
    for name, value, status in parts:
        body = (
            b'--b\r\nContent-Disposition: form-data; name="'
            + name
            + b'"\r\n\r\n'
            + value
            + b'\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="\xff.jpg"\r\n'
            + b"Content-Type: image/jpeg\r\n\r\n"
            + astronaut_jpeg
            + b"\r\n--b--\r\n"
        )
        headers = {"content-type": "multipart/form-data; boundary=b"}
        assert_error(client.post("/v1/detect", content=body, headers=headers), status)
    assert_serving(client, astronaut_jpeg)


def test_lone_surrogates_never_reach_the_ner_models() -> None:
    """Paths that build texts without the HTTP parser (CLI, jobs) hit the same check."""
    service = NerService(registry=None, max_texts=8, max_chars=100, timeout_s=1.0)  # type: ignore[arg-type]
    for text in ("Paris \ud800", "\udfff", "a\udc80b"):
        with pytest.raises(ValidationFailed, match="surrogate"):
            asyncio.run(service.recognise(["fine", text], "en-core-web-sm"))


def test_nul_and_control_characters(client: TestClient, astronaut_jpeg: bytes) -> None:
    text = "Tim Cook\x00 met\x01 Angela Merkel in\x00Berlin.\x7f\u202e\ufeff"
    for model in ("en-core-web-sm", "pii"):
        r = client.post("/v1/ner", json={"texts": [text, "\x00" * 50], "model": model})
        assert r.status_code == 200, r.text
        for s in r.json()["results"][0]["spans"]:
            assert text[s["start"] : s["end"]] == s["text"]
    r = client.post("/v1/ner", json={"texts": [text], "format": "conll"})
    assert r.status_code == 200
    b64 = base64.b64encode(astronaut_jpeg).decode()
    for name in ("a\x00b.jpg", "a\x01b.jpg"):  # XML 1.0 cannot hold these: 422, not a 500
        r = client.post("/v1/detect", json={"image": b64, "format": "voc", "file_name": name})
        assert_error(r, 422, "validation_error")
        r = client.post("/v1/detect", json={"image": b64, "format": "coco", "file_name": name})
        assert r.status_code == 200 and r.json()["images"][0]["file_name"] == name
    r = client.post(
        "/v1/sam/segment",
        json={"image": b64, "box": [100, 20, 300, 200], "format": "voc", "label": "x\x00"},
    )
    assert_error(r, 422, "validation_error")
    assert_error(client.post("/v1/detect", json={"image": b64, "model": "\x00"}), 404)
    assert_serving(client, astronaut_jpeg)


def test_extreme_numbers(client: TestClient, astronaut_jpeg: bytes) -> None:
    b64 = base64.b64encode(astronaut_jpeg).decode()
    for body in (
        {"image": b64, "points": [{"x": 1e308, "y": 1}]},
        {"image": b64, "points": [{"x": -1e-308, "y": -0.0}]},
        {"image": b64, "points": [{"x": 10, "y": 10}], "box": [1e308, 1, 1e308, 2]},
        {"image": b64, "box": [-50, -50, 100, 100]},
        {"image": b64, "box": [300, 300, 100, 100]},  # x2 < x1: a negative size
        {"image": b64, "box": [1, 2, 3]},
        {"image": b64, "points": [{"x": 1, "y": 1}] * 65},  # PRELABEL_MAX_POINTS is 64
    ):
        assert_error(client.post("/v1/sam/segment", json=body), 422, "validation_error")
    raw = b'{"image": "%s", "points": [{"x": 1e400, "y": 1}]}' % b64.encode()  # inf
    assert_error(client.post("/v1/sam/segment", content=raw, headers=JSON), 422)
    for detect_body in (
        {"image": b64, "max_detections": -1},
        {"image": b64, "max_detections": 10**30},
        {"image": b64, "score_threshold": 1e308},
        {"image": b64, "iou_threshold": -1e-300},
    ):
        assert_error(client.post("/v1/detect", json=detect_body), 422, "validation_error")
    assert_error(client.post("/v1/ner", json={"texts": ["x"], "min_score": -1e308}), 422)
    assert_serving(client, astronaut_jpeg)


# --- caps and Label Studio ------------------------------------------------------------------

LS_HOST = "http://ls.test:8080"
LS_CONFIG = """<View><Image name="image" value="$image"/>
  <BrushLabels name="brush" toName="image"><Label value="Person"/></BrushLabels>
  <KeyPointLabels name="kp" toName="image" smart="true"><Label value="Person"/></KeyPointLabels>
</View>"""


def click(x: object = 50, y: object = 30, **over: object) -> dict[str, object]:
    region: dict[str, object] = {
        "type": "keypointlabels",
        "to_name": "image",
        "original_width": 512,
        "original_height": 512,
        "is_positive": True,
        "value": {"x": x, "y": y, "keypointlabels": ["Person"]},
    }
    return region | over


def interactive(client: TestClient, regions: object) -> httpx2.Response:
    task = {"id": 7, "data": {"image": "/data/upload/1/astronaut.png"}}
    body = {"tasks": [task], "project": "77.1", "params": {"context": {"result": regions}}}
    return client.post("/predict", json=body)


def test_caps_on_every_path(client: TestClient, astronaut_jpeg: bytes) -> None:
    s = runtime_of(client).settings
    over = s.max_texts + 1
    assert_error(client.post("/v1/ner", json={"texts": ["x"] * over}), 422, "validation_error")
    long = "a" * (s.max_text_chars + 1)
    assert_error(client.post("/v1/ner", json={"texts": ["ok", long]}), 422, "validation_error")
    tasks = [{"id": i, "data": {"text": "x"}} for i in range(s.ls_max_tasks + 1)]
    body = {"tasks": tasks, "project": "5.1", "label_config": "<View/>"}
    r = client.post("/predict", json=body)
    assert_error(r, 422, "validation_error")
    assert f"at most {s.ls_max_tasks}" in r.json()["error"]["message"]
    points = json.dumps([{"x": 1, "y": 1}] * (s.max_points + 1))
    r = upload(client, "/v1/sam/segment", astronaut_jpeg, points=points)
    assert_error(r, 422, "validation_error")
    assert_serving(client, astronaut_jpeg)


def test_label_studio_text_over_the_cap_gets_no_prediction(client: TestClient) -> None:
    config = '<View><Text name="t" value="$text"/><Labels name="l" toName="t">'
    config += '<Label value="ORG"/></Labels></View>'
    s = runtime_of(client).settings
    tasks = [{"id": 1, "data": {"text": "Apple is in Cupertino."}}]
    tasks.append({"id": 2, "data": {"text": "a" * (s.max_text_chars + 1)}})
    r = client.post("/predict", json={"tasks": tasks, "project": "6.1", "label_config": config})
    assert r.status_code == 200, r.text
    ok, too_long = r.json()["results"]
    assert ok["result"] and "result" not in too_long


def test_malformed_interactive_context(client: TestClient, astronaut_jpeg: bytes) -> None:
    runtime = runtime_of(client)
    body = {"project": "77.1", "schema": LS_CONFIG, "hostname": LS_HOST, "access_token": "t"}
    assert client.post("/setup", json=body).status_code == 200
    # The task image as if already fetched from Label Studio (fetching is test_labelstudio's).
    png = (SKIMAGE_DATA / "astronaut.png").read_bytes()
    project = runtime.ls_projects.get("77.1")
    assert project is not None
    access = project.access
    runtime.ls_predictor.images.put(image_key(access, "/data/upload/1/astronaut.png", None), png)
    r = interactive(client, [click()])
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["result"][0]["type"] == "brushlabels"
    max_regions = runtime.settings.max_points + 1
    for regions, status in (
        ([click()] * (max_regions + 1), 422),
        ("a string", 422),
        ([1, 2], 422),
        ([click(), None], 422),
        ([click(value="x")], 422),
        ([click(value=[1, 2])], 422),
        ([click(x="fifty")], 422),
        ([click(x=None)], 422),
        ([click(x={"a": 1})], 422),
        ([click(original_width="wide")], 422),
        ([click(original_width=-512)], 422),
        ([click(original_width=10**400)], 422),
        ([click(value={"y": 1})], 422),
        ([click(type="rectanglelabels", value={"x": 1, "y": 1, "width": "w"})], 422),
        ([click(x=1e308)], 422),  # a click far outside the image
        ([click(x=-5)], 422),
    ):
        assert_error(interactive(client, regions), status)
    assert interactive(client, [click(), click(70, 60, is_positive=False)]).status_code == 200
    assert_serving(client, astronaut_jpeg)


def test_broken_labeling_config_and_odd_webhooks(
    client: TestClient, astronaut_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both were 500s, found by test_fuzz.py."""
    tasks = [{"id": 1, "data": {"text": "x"}}]
    for config in ("<View", "", "<View><Labels name='l'/></View>", "<!DOCTYPE x><View/>"):
        body = {"tasks": tasks, "project": f"8.{len(config)}", "label_config": config}
        r = client.post("/predict", json=body)
        assert r.status_code in (200, 400), r.text  # "" is no config: a project it never saw
        if r.status_code == 400:
            assert_error(r, 400, "bad_input")
    runtime = runtime_of(client)
    monkeypatch.setattr(runtime.settings, "ls_precompute_embeddings", True)
    client.post("/setup", json={"project": "12.1", "schema": "<View"})
    for event in (
        {"action": "TASKS_CREATED", "project": 12, "tasks": [1]},
        {"action": "TASKS_CREATED", "project": "12", "tasks": "x"},
        {"action": "TASKS_CREATED", "project": {"id": 12}, "tasks": [1, "a", {"data": 3}]},
        {"action": "TASKS_CREATED", "project": {"id": [1]}, "tasks": None},
    ):
        r = client.post("/webhook", json=event)
        assert r.status_code == 200 and r.json() == {"status": "ok"}, (event, r.text)
    assert_serving(client, astronaut_jpeg)
