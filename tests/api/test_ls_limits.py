"""Bounded Label Studio state and work off the event loop (issue 10): the labeling-config parse
on a worker thread, webhook events kept as summaries with a body cap, /setup field caps, the
project registry, and the TASKS_CREATED precomputations in flight."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.domain.labelstudio.events import EventSummary
from tests.api.ls_canary import Canary, label_studio_side
from tests.conftest import metric, portal, runtime_of

CONFIG = """<View><Image name="image" value="$image"/>
  <BrushLabels name="brush" toName="image"><Label value="person"/></BrushLabels></View>"""


def test_the_config_parse_runs_off_the_event_loop(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = runtime_of(client)
    threads: list[str] = []
    real = rt.ls_predictor.configs.parse

    def recording(xml: str) -> object:
        threads.append(threading.current_thread().name)
        return real(xml)

    monkeypatch.setattr(rt.ls_predictor.configs, "parse", recording)
    loop_thread = portal(client).call(lambda: threading.current_thread().name)
    config = CONFIG.replace("person", "parse-off-loop")
    body = {"tasks": [{"id": 1, "data": {}}], "project": "601.1", "label_config": config}
    assert client.post("/predict", json=body).status_code == 200
    assert threads and loop_thread not in threads


def test_webhook_events_are_kept_as_bounded_summaries(client: TestClient) -> None:
    rt = runtime_of(client)
    big = {"id": 9, "data": {"text": "x" * 500_000}}
    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 3},
        "task": big,
        "annotation": {"id": 4},
    }
    before = dict(rt.events.counts)
    assert client.post("/webhook", json=event).status_code == 200
    for i in range(3):  # made-up actions share one counter
        assert client.post("/webhook", json={"action": f"MADE_UP_{i}"}).status_code == 200
    last = list(rt.events.recent)[-4]
    assert last == EventSummary(last.received_at, "ANNOTATION_CREATED", 3, 9, 4, 1)
    assert isinstance(last, EventSummary)  # nothing of the task's data is kept
    assert rt.events.counts["other"] == before.get("other", 0) + 3
    assert not any(k.startswith("MADE_UP") for k in rt.events.counts)
    cap = rt.settings.ls_max_webhook_bytes
    r = client.post(
        "/webhook",
        content=b'{"a": "' + b"x" * cap + b'"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_setup_fields_are_capped_and_the_registry_is_bounded(client: TestClient) -> None:
    rt = runtime_of(client)
    for field, size in (("hostname", 3000), ("access_token", 5000), ("project", 300)):
        body = {"project": "602.1", "schema": CONFIG, field: "h" * size}
        assert client.post("/setup", json=body).status_code == 422, field
    assert (
        client.post("/setup", json={"project": "602.1", "hostname": "ftp://x"}).status_code == 422
    )
    saved = rt.ls_projects.max_projects
    rt.ls_projects.max_projects = 3
    try:
        for i in range(6):
            assert (
                client.post(
                    "/setup", json={"project": f"{610 + i}.1", "schema": CONFIG}
                ).status_code
                == 200
            )
        assert len(rt.ls_projects) == 3
        assert rt.ls_projects.get("610.1") is None and rt.ls_projects.get("615.1") is not None
    finally:
        rt.ls_projects.max_projects = saved


def test_precomputations_in_flight_are_capped(client: TestClient) -> None:
    gate = threading.Event()

    def slow(h: object) -> tuple[int, bytes, dict[str, str]]:
        gate.wait(30)  # held until the test has sent its webhook; released at the end
        return 404, b"", {}

    with Canary(slow) as ls, label_studio_side(client, allowed=(ls.origin,)) as rt:
        assert (
            client.post(
                "/setup",
                json={
                    "project": "620.1",
                    "schema": CONFIG,
                    "hostname": ls.origin,
                    "access_token": "t",
                },
            ).status_code
            == 200
        )
        saved = rt.ls_predictor.max_precompute
        rt.ls_predictor.max_precompute = 2
        rt.settings.ls_precompute_embeddings = True
        before = metric(
            client,
            "prelabel_ls_background_failures_total",
            kind="embedding",
            reason="over_capacity",
        )
        try:
            tasks = [{"id": i, "data": {"image": f"/data/upload/1/{i}.png"}} for i in range(5)]
            event = {"action": "TASKS_CREATED", "project": {"id": 620}, "tasks": tasks}
            assert client.post("/webhook", json=event).status_code == 200
            assert len(rt.ls_predictor._background) == 2
        finally:
            gate.set()
            rt.settings.ls_precompute_embeddings = False
            rt.ls_predictor.max_precompute = saved
        after = metric(
            client,
            "prelabel_ls_background_failures_total",
            kind="embedding",
            reason="over_capacity",
        )
        assert after == before + 3


def test_a_failed_webhook_action_is_acknowledged_logged_once_and_counted(
    client: TestClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rt = runtime_of(client)
    saved = rt.events.path
    rt.events.path = tmp_path  # a directory: appending to it fails (IsADirectoryError)
    labels = {"kind": "webhook", "reason": "internal_error"}
    before = metric(client, "prelabel_ls_background_failures_total", **labels)
    try:
        with caplog.at_level(logging.INFO):
            event = {"action": "ANNOTATION_CREATED", "project": {"id": 630}}
            r = client.post("/webhook", json=event)
    finally:
        rt.events.path = saved
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    lines = [x for x in caplog.records if "label studio webhook failed" in x.getMessage()]
    assert len(lines) == 1 and "project=630" in lines[0].getMessage() and not lines[0].exc_info
    assert metric(client, "prelabel_ls_background_failures_total", **labels) == before + 1
