"""Label Studio's ML-backend protocol: /health, /setup, /webhook."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="person"/></RectangleLabels>
</View>"""


def test_health_is_json_and_up(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200 and r.json() == {
        "status": "UP",
        "model_class": "Prelabel",
        "ready": True,
    }


def test_setup_returns_a_stable_model_version_per_config(client: TestClient) -> None:
    body = {
        "project": "3.1700000000",
        "schema": CONFIG,
        "hostname": "http://ls:8080",
        "access_token": "abc",
        "extra_params": None,
        "something_new": 1,
    }
    first = client.post("/setup", json=body)
    again = client.post("/setup", json=body)
    other = client.post("/setup", json={**body, "schema": CONFIG.replace("person", "car")})
    assert first.status_code == 200
    version = first.json()["model_version"]
    assert version.startswith("prelabel-") and again.json()["model_version"] == version
    assert other.json()["model_version"] != version
    project = client.app.state.runtime.ls_projects.get("3.1700000000")  # type: ignore[attr-defined]
    assert project.access.host == "http://ls:8080" and project.access.token == "abc"
    assert not project.access.trusted  # not the operator's Label Studio: the full URL policy
    assert client.post("/setup", json={"schema": CONFIG}).status_code == 422  # no project


def test_model_version_survives_a_restart() -> None:
    settings = Settings(models=["en-core-web-sm"], default_detector="", default_sam="")
    versions = []
    for _ in range(2):
        with TestClient(create_app(settings)) as c:
            versions.append(c.post("/setup", json={"project": "1.1", "schema": CONFIG}).json())
    assert versions[0] == versions[1]


def test_webhook_acknowledges_and_records_events(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    settings = Settings(
        models=["en-core-web-sm"], default_detector="", default_sam="", events_path=log
    )
    event = {
        "action": "ANNOTATION_CREATED",
        "annotation": {"id": 7, "result": []},
        "task": {"id": 3, "data": {"text": "Paris"}},
        "project": {"id": 1},
    }
    with TestClient(create_app(settings)) as c:
        assert c.post("/webhook", json=event).json() == {"status": "ok"}
        assert c.post("/webhook", json={"action": "START_TRAINING"}).status_code == 200
        assert (
            c.post(
                "/webhook", content=b"[1]", headers={"content-type": "application/json"}
            ).status_code
            == 422
        )
        counts = c.app.state.runtime.events.counts  # type: ignore[attr-defined]
        assert counts == {"ANNOTATION_CREATED": 1, "START_TRAINING": 1}
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["action"] for x in lines] == ["ANNOTATION_CREATED", "START_TRAINING"]
    assert lines[0]["annotation"]["id"] == 7
