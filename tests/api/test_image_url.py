"""`image_url` on the image routes: the real models on an image served by a local server on
127.0.0.1 (allowed as PRELABEL_URL_ALLOWED_NETWORKS=127.0.0.1/32 allows it), and the default
policy refusing the same server. No DNS: every URL names 127.0.0.1."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.domain.urls import SafeFetcher, UrlPolicy
from tests.api.test_detect import ASTRONAUT_BOX, iou
from tests.conftest import metric, png_bytes, portal, runtime_of
from tests.local_http import LocalServer, send

ASTRONAUT = png_bytes("astronaut.png")
ROUTES = {
    "/astronaut.png": lambda h: send(h, 200, ASTRONAUT, "image/png"),
    "/page.jpg": lambda h: send(h, 200, b"<html>hello</html>", "image/jpeg"),
}


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(ROUTES) as s:
        yield s


@pytest.fixture
def local(client: TestClient) -> Iterator[TestClient]:
    """The app with the URL policy of PRELABEL_URL_ALLOWED_NETWORKS=127.0.0.1/32 and
    PRELABEL_URL_ALLOW_HTTP=true."""
    runtime = runtime_of(client)
    real = runtime.url_fetcher
    settings = Settings(url_allowed_networks="127.0.0.1/32", url_allow_http=True)
    runtime.url_fetcher = SafeFetcher(UrlPolicy.from_settings(settings))
    yield client
    portal(client).call(runtime.url_fetcher.aclose)
    runtime.url_fetcher = real


def test_detect_from_an_image_url_finds_the_astronaut(
    local: TestClient, server: LocalServer
) -> None:
    url = server.url("/astronaut.png")
    as_json = local.post("/v1/detect", json={"image_url": url})
    form = {"image_url": (None, url), "classes": (None, "person")}  # multipart, no file part
    as_form = local.post("/v1/detect", files=form)
    uploaded = local.post("/v1/detect", files={"file": ("a.png", ASTRONAUT, "image/png")})
    assert as_json.status_code == 200, as_json.json()
    assert as_form.status_code == 200, as_form.json()
    people = [d for d in as_json.json()["detections"] if d["label"] == "person"]
    assert people and iou(people[0]["box"], ASTRONAUT_BOX) > 0.6
    assert as_json.json()["detections"] == uploaded.json()["detections"]
    assert [d["label"] for d in as_form.json()["detections"]] == ["person"]
    assert [p for p, _ in server.hits[-2:]] == ["/astronaut.png"] * 2


def test_sam_embed_and_segment_take_an_image_url(local: TestClient, server: LocalServer) -> None:
    runtime = runtime_of(local)
    url = server.url("/astronaut.png")
    emb = local.post("/v1/sam/embed", json={"image_url": url})
    assert emb.status_code == 200, emb.json()
    assert emb.json()["embedding_id"] == runtime.segmentation.embedding_id("minisam", ASTRONAUT)
    form = {"image_url": (None, url), "points": (None, '[{"x": 230, "y": 110}]')}
    seg = local.post("/v1/sam/segment", files=form)
    assert seg.status_code == 200, seg.json()
    assert seg.json()["encoder_cached"] is True  # same bytes as the embed: no second encode
    assert seg.json()["masks"][0]["area"] > 0.3 * 512 * 512


def test_the_default_policy_refuses_local_addresses_without_connecting(
    client: TestClient, server: LocalServer, astronaut_jpeg: bytes
) -> None:
    before = len(server.hits)
    refused = metric(client, "prelabel_rejections_total", reason="url_blocked")
    cases = (
        (server.url("/astronaut.png").replace("http:", "https:"), "loopback"),
        (server.url("/astronaut.png").replace("127.0.0.1", "[::ffff:127.0.0.1]"), "https"),
        ("https://[::ffff:127.0.0.1]/astronaut.png", "loopback"),
        ("https://2130706433/astronaut.png", "dotted-quad"),
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("file:///etc/passwd", "scheme"),
        ("https://user:pw@127.0.0.1/", "credentials"),
    )
    for url, reason in cases:
        r = client.post("/v1/detect", json={"image_url": url})
        assert r.status_code == 422, (url, r.json())
        assert r.json()["error"]["code"] == "url_blocked"
        assert reason in r.json()["error"]["message"]
    assert len(server.hits) == before
    after = metric(client, "prelabel_rejections_total", reason="url_blocked")
    assert after == refused + len(cases)
    ok = client.post("/v1/detect", files={"file": ("a.jpg", astronaut_jpeg, "image/jpeg")})
    assert ok.status_code == 200  # and the server keeps serving


def test_exactly_one_image_source_and_upstream_failures(
    local: TestClient, server: LocalServer
) -> None:
    b64 = base64.b64encode(ASTRONAUT).decode()
    url = server.url("/astronaut.png")
    for kwargs, status, code in (
        ({"json": {"image": b64, "image_url": url}}, 422, "validation_error"),
        ({"json": {"score_threshold": 0.5}}, 422, "validation_error"),
        ({"json": {"image_url": 42}}, 422, "validation_error"),
        ({"json": {"image_url": ""}}, 422, "validation_error"),
        (
            {"data": {"image_url": url}, "files": {"file": ("a.png", ASTRONAUT, "image/png")}},
            422,
            "validation_error",
        ),
        ({"json": {"image_url": server.url("/page.jpg")}}, 415, "unsupported_media_type"),
        ({"json": {"image_url": server.url("/missing.png")}}, 502, "fetch_failed"),
        ({"json": {"image_url": url + "x" * 3000}}, 422, "url_blocked"),
    ):
        r = local.post("/v1/detect", **kwargs)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (kwargs, r.json())
    r = local.post("/v1/sam/segment", json={"image_url": url, "image": b64, "points": []})
    assert r.status_code == 422
