"""429 and 504 over HTTP. The real detector is wrapped in a gate so the test controls timing
(the one place a fake is allowed: overload and deadlines)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import ServingOverride, Settings
from app.main import create_app
from tests.conftest import metric


@pytest.fixture
def gated() -> Iterator[tuple[TestClient, threading.Event, threading.Event]]:
    settings = Settings(
        models=["nanodet-g"],
        default_sam="",
        default_ner="",
        max_queue=1,
        request_timeout_s=1.0,
        serving={"nanodet-g": ServingOverride(workers=1, max_batch_size=1)},
    )
    with TestClient(create_app(settings)) as client:
        batcher = client.app.state.runtime.registry.detector("nanodet-g").batcher  # type: ignore[attr-defined]
        real = batcher._fn
        gate, entered = threading.Event(), threading.Event()

        def held(items: Sequence[Any]) -> Any:
            entered.set()
            assert gate.wait(10)
            return real(items)

        batcher._fn = held
        yield client, gate, entered
        gate.set()


def test_full_queue_is_429_and_expired_deadline_is_504(
    gated: tuple[TestClient, threading.Event, threading.Event], astronaut_jpeg: bytes
) -> None:
    client, gate, entered = gated
    batcher = client.app.state.runtime.registry.detector("nanodet-g").batcher  # type: ignore[attr-defined]
    files = {"file": ("a.jpg", astronaut_jpeg, "image/jpeg")}
    batches = metric(client, "prelabel_batch_size_count", model="nanodet-g")

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
            running = asyncio.create_task(ac.post("/v1/detect", files=files))
            await asyncio.to_thread(entered.wait, 10)  # the worker holds request 1
            queued = asyncio.create_task(ac.post("/v1/detect", files=files))
            # Poll: the queue has no event to await, and request 2 must be queued (after its
            # decode on a worker thread) before request 3 arrives.
            while batcher.depth() < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            overflow = await ac.post("/v1/detect", files=files)
            expired = await queued  # its 1 s deadline passes while the worker is held
            gate.set()
            return await running, expired, overflow

    first, expired, overflow = asyncio.run(scenario())
    assert overflow.status_code == 429
    assert overflow.headers["retry-after"] == "1"
    assert overflow.json()["error"]["code"] == "overloaded"
    assert expired.status_code == 504 and expired.json()["error"]["code"] == "deadline_exceeded"
    # The deadline covers queue and compute: the held request ran past it too, and its result
    # was dropped; the expired queued one was never computed.
    assert first.status_code == 504
    again = client.post("/v1/detect", files=files)
    assert again.status_code == 200 and again.json()["detections"]
    assert metric(client, "prelabel_batch_size_count", model="nanodet-g") == batches + 2
