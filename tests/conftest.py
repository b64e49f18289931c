"""Shared fixtures: real sample images and one running app on the default models."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import skimage
from anyio.from_thread import BlockingPortal
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from app.main import create_app
from app.runtime import Runtime

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"


def png_bytes(name: str) -> bytes:
    """A sample image file shipped in the scikit-image wheel (real photographs)."""
    return (SKIMAGE_DATA / name).read_bytes()


def jpeg_bytes(array: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="session")
def astronaut_png() -> bytes:
    return png_bytes("astronaut.png")


@pytest.fixture(scope="session")
def astronaut_jpeg(astronaut_png: bytes) -> bytes:
    return jpeg_bytes(np.asarray(Image.open(io.BytesIO(astronaut_png)).convert("RGB")))


@pytest.fixture(scope="session")
def client() -> Iterator[TestClient]:
    """The real app on the default models, started once for the whole session."""
    with TestClient(create_app(Settings()), raise_server_exceptions=False) as c:
        ready = c.get("/readyz")
        assert ready.status_code == 200, ready.json()
        yield c


def portal(client: TestClient) -> BlockingPortal:
    """The started client's event-loop portal (None outside `with TestClient(...)`)."""
    assert client.portal is not None, "the TestClient is not started"
    return client.portal


def runtime_of(client: TestClient) -> Runtime:
    """The app's Runtime (`app.state.runtime`, which its lifespan sets)."""
    assert isinstance(client.app, FastAPI)
    runtime: Runtime = client.app.state.runtime
    return runtime


def metric(client: TestClient, name: str, **labels: str) -> float:
    """Read one sample from /metrics (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
