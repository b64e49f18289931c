"""Fixtures of the deploy tests."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.main import create_app


@pytest.fixture(scope="module")
def app_routes() -> set[str]:
    """The app's routes, from its OpenAPI document (probes and /metrics included)."""
    app = create_app(Settings(_env_file=None))
    return set(app.openapi()["paths"])
