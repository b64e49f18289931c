"""POST /v1/detect on the real NanoDet-g and real photographs."""

from __future__ import annotations

import asyncio
import base64

import httpx
from fastapi.testclient import TestClient

from tests.conftest import metric


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


# The astronaut (Eileen Collins) fills the left two thirds of skimage's 512x512 portrait.
ASTRONAUT_BOX = [0.0, 0.0, 380.0, 512.0]


def test_astronaut_gets_a_person_box_over_the_astronaut(
    client: TestClient, astronaut_jpeg: bytes
) -> None:
    r = client.post("/v1/detect", files={"file": ("a.jpg", astronaut_jpeg, "image/jpeg")})
    assert r.status_code == 200, r.json()
    body = r.json()
    assert (body["width"], body["height"]) == (512, 512)
    assert body["model"] == "nanodet-g"
    people = [d for d in body["detections"] if d["label"] == "person"]
    assert people, body
    assert iou(people[0]["box"], ASTRONAUT_BOX) > 0.6
    assert all(0 <= v <= 512 for d in body["detections"] for v in d["box"])


def test_json_base64_and_options(client: TestClient, astronaut_png: bytes) -> None:
    payload = {
        "image": base64.b64encode(astronaut_png).decode(),
        "classes": ["person"],
        "score_threshold": 0.5,
        "max_detections": 1,
    }
    r = client.post("/v1/detect", json=payload)
    assert r.status_code == 200, r.json()
    dets = r.json()["detections"]
    assert len(dets) == 1 and dets[0]["label"] == "person" and dets[0]["score"] >= 0.5


def test_classes_filter_can_remove_everything(client: TestClient, astronaut_png: bytes) -> None:
    r = client.post(
        "/v1/detect",
        files={"file": ("a.png", astronaut_png, "image/png")},
        data={"classes": "giraffe,zebra"},
    )
    assert r.status_code == 200 and r.json()["detections"] == []


def test_unknown_class_is_422(client: TestClient, astronaut_png: bytes) -> None:
    r = client.post(
        "/v1/detect", files={"file": ("a.png", astronaut_png)}, data={"classes": "unicorn"}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


def test_32_concurrent_requests_all_succeed_and_batch(
    client: TestClient, astronaut_jpeg: bytes
) -> None:
    before_count = metric(client, "prelabel_batch_size_count", model="nanodet-g")
    before_single = metric(client, "prelabel_batch_size_bucket", model="nanodet-g", le="1.0")

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
            return await asyncio.gather(
                *(
                    ac.post("/v1/detect", files={"file": ("a.jpg", astronaut_jpeg, "image/jpeg")})
                    for _ in range(32)
                )
            )

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 32
    assert len({tuple(r.json()["detections"][0]["box"]) for r in responses}) == 1
    batches = metric(client, "prelabel_batch_size_count", model="nanodet-g") - before_count
    singles = (
        metric(client, "prelabel_batch_size_bucket", model="nanodet-g", le="1.0") - before_single
    )
    assert batches < 32, "every request ran alone"
    assert singles < batches, "no batch larger than 1 formed"
