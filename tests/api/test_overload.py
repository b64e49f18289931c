"""429 and 504 over HTTP. The real detector is wrapped in a gate so the test controls timing
(the one place a fake is allowed: overload and deadlines)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import ServingOverride, Settings
from app.main import create_app
from tests.conftest import metric, runtime_of


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
        batcher = runtime_of(client).registry.detector("nanodet-g").batcher
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
    batcher = runtime_of(client).registry.detector("nanodet-g").batcher
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


class SlowBody:
    """A request straight into the ASGI app whose client sends `Content-Length: 1000`, 10 bytes,
    then nothing (a stalled upload), from `client_ip`."""

    def __init__(self, app: Any, client_ip: str = "127.0.0.2") -> None:
        self.app = app
        self.client_ip = client_ip
        self.waiting = asyncio.Event()  # the app asked for the rest of the body
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.sent = False

    async def receive(self) -> dict[str, Any]:
        if not self.sent:
            self.sent = True
            return {"type": "http.request", "body": b'{"texts": ', "more_body": True}
        self.waiting.set()
        await asyncio.Event().wait()  # never more
        raise AssertionError("unreachable")

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = dict(message.get("headers", []))

    async def run(self) -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/detect",
            "raw_path": b"/v1/detect",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
            "client": (self.client_ip, 50000),
            "server": ("127.0.0.1", 8000),
        }
        await self.app(scope, self.receive, self.send)
        return self.status


@pytest.fixture
def slow_app() -> Iterator[TestClient]:
    settings = Settings(
        models=["nanodet-g"],
        default_sam="",
        default_ner="",
        max_in_flight=2,
        max_receiving_per_client=4,
        body_idle_timeout_s=1.0,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_stalled_bodies_hold_no_in_flight_slot_and_give_theirs_back(
    slow_app: TestClient, astronaut_jpeg: bytes
) -> None:
    """Twice max_in_flight stalled uploads: a normal detect still gets 200 while they stall (it
    failed with 429 before: they held every slot), a fifth stalled upload from the same caller
    is refused at once (per-caller receiving budget), and each stalled one ends with 408 and
    `Connection: close` at the idle limit, its slot back."""
    files = {"file": ("a.jpg", astronaut_jpeg, "image/jpeg")}

    async def scenario() -> tuple[list[int], httpx.Response, int, list[SlowBody]]:
        transport = httpx.ASGITransport(app=slow_app.app, client=("127.0.0.1", 123))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
            slow = [SlowBody(slow_app.app) for _ in range(4)]
            tasks = [asyncio.create_task(s.run()) for s in slow]
            await asyncio.wait_for(asyncio.gather(*(s.waiting.wait() for s in slow)), 30)
            extra = await asyncio.wait_for(SlowBody(slow_app.app).run(), 30)
            normal = await ac.post("/v1/detect", files=files)
            assert not any(t.done() for t in tasks)  # still stalled while detect was served
            statuses = await asyncio.wait_for(asyncio.gather(*tasks), 30)
            return statuses, normal, extra, slow

    statuses, normal, extra, slow = asyncio.run(scenario())
    assert normal.status_code == 200 and normal.json()["detections"]
    assert extra == 429
    assert statuses == [408] * 4
    assert all(s.headers[b"connection"] == b"close" for s in slow)
    rt = runtime_of(slow_app)
    assert rt.in_flight == 0
    again = slow_app.post("/v1/detect", files=files)
    assert again.status_code == 200


def test_a_whole_body_deadline_ends_a_slow_trickle() -> None:
    """A client that keeps sending a byte at a time, never pausing past the idle limit, is cut
    off at the whole-body deadline."""
    settings = Settings(models=["nanodet-g"], default_sam="", default_ner="", body_timeout_s=1.0)
    with TestClient(create_app(settings)) as client:

        async def scenario() -> tuple[int, int, bytes]:
            sent = 0
            status, body = 0, b""

            async def receive() -> dict[str, Any]:
                nonlocal sent
                await asyncio.sleep(0.05)
                sent += 1
                return {"type": "http.request", "body": b" ", "more_body": True}

            async def send(message: MutableMapping[str, Any]) -> None:
                nonlocal status, body
                if message["type"] == "http.response.start":
                    status = message["status"]
                else:
                    body += message.get("body", b"")

            scope_app = client.app
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": "/v1/detect",
                "raw_path": b"/v1/detect",
                "root_path": "",
                "query_string": b"",
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"100000"),
                ],
                "client": ("127.0.0.9", 1),
                "server": ("127.0.0.1", 8000),
            }
            await asyncio.wait_for(scope_app(scope, receive, send), 30)
            return status, sent, body

        status, sent, body = asyncio.run(scenario())
        assert metric(client, "prelabel_rejections_total", reason="too_slow") == 1
    assert status == 408, body
    assert b"request_timeout" in body and b"within 1 s" in body
    assert sent < 100_000
