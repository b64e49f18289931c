"""Request ids, structured logs that never carry secrets, and rejections counted by reason."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.logging_setup import configure_logging
from app.main import create_app
from tests.api.test_auth import ALICE, basic, bearer, keyed_settings
from tests.api.test_errors import png_header
from tests.conftest import metric, runtime_of

LS_TOKEN = "ls-secret-token-8f1e2d3c4b5a"
CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image"><Label value="person"/></RectangleLabels>
</View>"""


@pytest.fixture(scope="module")
def keyed() -> Iterator[TestClient]:
    app = create_app(keyed_settings())
    _add_failing_route(app)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _add_failing_route(app: FastAPI) -> None:
    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/test/boom", boom)


class Logs:
    """Everything logged (root, DEBUG and up) while the fixture is active, formatted."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def json_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.text.splitlines()]

    def access(self) -> list[dict[str, object]]:
        return [r for r in self.json_lines() if r["logger"] == "prelabel.access"]


@contextmanager
def captured(fmt: Literal["text", "json"]) -> Iterator[Logs]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    out = Logs()
    handler = configure_logging("debug", fmt, out.stream)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        for h in saved:
            root.addHandler(h)
        root.setLevel(level)


@pytest.fixture
def json_logs() -> Iterator[Logs]:
    with captured("json") as out:
        yield out


@pytest.fixture(params=["json", "text"])
def logs(request: pytest.FixtureRequest) -> Iterator[Logs]:
    with captured(request.param) as out:
        yield out


def test_request_id_is_honoured_on_success_and_errors(keyed: TestClient) -> None:
    for method, path, headers, status in [
        ("GET", "/v1/models", bearer(ALICE), 200),
        ("GET", "/v1/nope", bearer(ALICE), 404),
        ("GET", "/v1/models", {}, 401),  # answered before routing
        ("POST", "/v1/ner", bearer(ALICE), 422),
        ("GET", "/test/boom", bearer(ALICE), 500),  # an unhandled exception
    ]:
        rid = f"gw-{status}:trace/1"
        r = keyed.request(method, path, headers={**headers, "X-Request-ID": rid})
        assert r.status_code == status and r.headers["x-request-id"] == rid, r.text
        assert status == 200 or "error" in r.json()
    r = keyed.get("/test/boom", headers=bearer(ALICE))
    assert r.json()["error"]["code"] == "internal_error"
    assert "a bug" not in r.text  # no internals to the client


@pytest.mark.parametrize("bad", ["", "has space", "x" * 129, "é", "a\tb"])
def test_an_unusable_request_id_is_replaced(keyed: TestClient, bad: str) -> None:
    r = keyed.get("/livez", headers=[(b"X-Request-ID", bad.encode())])
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


def test_request_id_is_generated_and_unique(keyed: TestClient) -> None:
    ids = {keyed.get("/livez").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_json_access_log_line_has_the_fields(keyed: TestClient, json_logs: Logs) -> None:
    keyed.get("/v1/models", headers={**bearer(ALICE), "X-Request-ID": "req-42"})
    keyed.get("/v1/models?secret=1", headers={"X-Request-ID": "req-43"})
    ok, refused = json_logs.access()[-2:]
    assert ok["message"] == f"GET /v1/models 200 {ok['duration_ms']:.1f} ms"
    assert ok["method"] == "GET" and ok["route"] == "/v1/models" and ok["status"] == 200
    assert ok["request_id"] == "req-42" and ok["principal"] == "alice"
    assert isinstance(ok["duration_ms"], float) and ok["level"] == "INFO"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", str(ok["time"]))
    assert refused["status"] == 401 and refused["error"] == "unauthorized"
    assert refused["principal"] is None and refused["request_id"] == "req-43"
    assert "secret" not in json.dumps(refused)  # query strings are never logged


def test_lines_logged_inside_a_request_carry_its_id(keyed: TestClient, json_logs: Logs) -> None:
    keyed.get("/test/boom", headers={**bearer(ALICE), "X-Request-ID": "req-boom"})
    [error] = [r for r in json_logs.json_lines() if r["level"] == "ERROR"]
    assert error["request_id"] == "req-boom" and "RuntimeError: a bug" in str(error["exc_info"])
    assert json_logs.access()[-1]["status"] == 500


def test_probes_log_at_debug(keyed: TestClient, json_logs: Logs) -> None:
    keyed.get("/livez")
    keyed.get("/v1/models", headers=bearer(ALICE))
    levels = {r["route"]: r["level"] for r in json_logs.access()}
    assert levels == {"/livez": "DEBUG", "/v1/models": "INFO"}


def test_secrets_never_reach_the_logs(keyed: TestClient, logs: Logs) -> None:
    """A Label Studio token from /setup (used for a task-image fetch that fails and is logged),
    API keys in every header style, accepted and refused: none appears in any log line, at
    DEBUG, in either format."""
    setup = {
        "project": "7.1700000000",
        "schema": CONFIG,
        "hostname": "http://127.0.0.1:9",  # nothing listens there: the fetch fails locally
        "access_token": LS_TOKEN,
    }
    assert keyed.post("/setup", json=setup, headers=basic("ls", ALICE)).status_code == 200
    predict = {
        "tasks": [{"id": 1, "data": {"image": "/data/upload/1/a.png"}}],
        "project": "7.1700000000",
        "label_config": CONFIG,
        "params": {"login": "ls-login", "password": "ls-password-5e6f"},
    }
    r = keyed.post("/predict", json=predict, headers={"Authorization": f"Token {ALICE}"})
    assert r.status_code == 200, r.text
    keyed.get("/v1/models", headers=bearer("pl_wrong-key-9a8b7c6d5e4f"))
    keyed.get("/v1/models", headers=basic("ls", "pl_wrong-pass-1a2b3c"))
    assert "POST /predict 200" in logs.text  # the requests were logged...
    assert "task=1" in logs.text  # ...and so was the failed fetch
    basic_header = basic("ls", ALICE)["Authorization"].split()[1]
    for secret in (
        LS_TOKEN,
        ALICE,
        basic_header,
        "pl_wrong-key-9a8b7c6d5e4f",
        "pl_wrong-pass-1a2b3c",
        "ls-password-5e6f",
    ):
        assert secret not in logs.text, secret


def test_rejections_are_counted_by_reason(client: TestClient, keyed: TestClient) -> None:
    def count(c: TestClient, reason: str) -> float:
        return metric(c, "prelabel_rejections_total", reason=reason)

    bomb, too_large = count(client, "bomb"), count(client, "too_large")
    files = {"file": ("x.png", png_header(50_000, 50_000), "image/png")}
    r = client.post("/v1/detect", files=files)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert count(client, "bomb") == bomb + 1 and count(client, "too_large") == too_large

    limit = runtime_of(client).settings.max_upload_bytes
    big = {"Content-Length": str(limit * 2), "Content-Type": "application/json"}
    assert client.post("/v1/detect", headers=big, content=b"{}").status_code == 413
    files = {"file": ("x.jpg", b"\xff" * (limit + 1), "image/jpeg")}
    assert client.post("/v1/detect", files=files).status_code == 413
    assert count(client, "too_large") == too_large + 2 and count(client, "bomb") == bomb + 1

    unauthorized = count(keyed, "unauthorized")
    assert keyed.get("/v1/models").status_code == 401
    assert keyed.delete("/v1/sam/embeddings", headers=bearer(ALICE)).status_code == 403
    assert count(keyed, "unauthorized") == unauthorized + 2
    for reason in ("queue_full", "deadline", "url_blocked", "rate_limited"):
        assert f'prelabel_rejections_total{{reason="{reason}"}}' in client.get("/metrics").text
