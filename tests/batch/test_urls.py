"""Image URLs and Label Studio `/data/...` references as batch items: fetched when the item runs,
under the one URL policy, from a local image server (tests never leave the machine)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.batch.checkpoint import read_lines
from app.batch.inputs import enumerate_items
from app.cli.main import main
from app.config import Settings
from app.main import create_app

from .conftest import LOCAL_URLS

METADATA = "http://169.254.169.254/latest/meta-data/"


def annotate(src: Path, out: Path) -> int:
    argv = ["annotate", str(src), "--task", "detect", "--format", "jsonl", "--out", str(out)]
    return main(argv)


def labels(row: dict[str, Any]) -> set[str]:
    """The labels of a result line's objects."""
    return {str(o["label"]) for o in row["objects"]}


def test_inputs_keep_urls_and_label_studio_references(tmp_path: Path) -> None:
    (tmp_path / "m.lst").write_text("https://a.example/x.jpg\nlocal/y.png\n")
    items = enumerate_items(tmp_path / "m.lst")
    assert [(i.key, i.url, i.path) for i in items] == [
        ("https://a.example/x.jpg", "https://a.example/x.jpg", None),
        ("local/y.png", None, tmp_path / "local/y.png"),
    ]
    tasks = [
        {"id": 1, "data": {"image": "/data/upload/1/a.jpg"}},
        {"id": 2, "data": {"image": "https://b.example/b.png"}},
    ]
    (tmp_path / "t.json").write_text(json.dumps(tasks))
    got = [(i.key, i.url) for i in enumerate_items(tmp_path / "t.json")]
    assert got == [("1", "/data/upload/1/a.jpg"), ("2", "https://b.example/b.png")]


def test_manifest_urls_are_fetched_and_blocked_ones_recorded(
    tmp_path: Path, image_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in LOCAL_URLS.items():
        monkeypatch.setenv(k, v)
    good = [f"{image_server}/img/astronaut.png", f"{image_server}/img/coffee.png"]
    missing = f"{image_server}/img/nope.png"
    (tmp_path / "m.lst").write_text("\n".join([*good, METADATA, missing, "ftp://x/y.png"]))
    assert annotate(tmp_path / "m.lst", tmp_path / "out") == 2
    rows = {r["key"]: r for r in read_lines(tmp_path / "out" / "predictions.jsonl")}
    assert sorted(rows) == sorted(good)
    assert "person" in labels(rows[good[0]]) and rows[good[0]]["width"] == 512
    errors = {e["key"]: e["error"] for e in read_lines(tmp_path / "out" / "errors.jsonl")}
    assert errors[METADATA].startswith("url_blocked:")
    assert errors["ftp://x/y.png"].startswith("url_blocked:")
    assert errors[missing].startswith("fetch_failed:")


def test_label_studio_references_are_fetched_with_its_token(
    tmp_path: Path, image_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = [{"id": 7, "data": {"image": "/data/local-files/?d=astronaut.png"}}]
    (tmp_path / "tasks.json").write_text(json.dumps(tasks))
    monkeypatch.setenv("PRELABEL_LABEL_STUDIO_URL", image_server)
    # Without the token Label Studio refuses: the item fails, the run goes on.
    assert annotate(tmp_path / "tasks.json", tmp_path / "out") == 2
    (error,) = read_lines(tmp_path / "out" / "errors.jsonl")
    assert error["key"] == "7" and error["error"].startswith("fetch_failed:")
    monkeypatch.setenv("PRELABEL_LABEL_STUDIO_TOKEN", "secret")
    assert annotate(tmp_path / "tasks.json", tmp_path / "out") == 0  # the rerun retries it
    (row,) = read_lines(tmp_path / "out" / "predictions.jsonl")
    assert row["key"] == "7" and "person" in labels(row)


def test_a_job_takes_urls(tmp_path: Path, image_server: str) -> None:
    s = Settings(
        models=["nanodet-g"],
        default_sam="",
        default_ner="",
        jobs_db=tmp_path / "jobs.db",
        url_allow_http=True,
        url_allowed_networks=["127.0.0.1/32"],
    )
    url = f"{image_server}/img/astronaut.png"
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        for bad in ("ftp://x/y.png", "http://user:pw@example.com/a.png"):
            r = c.post("/v1/jobs", json={"items": [bad], "task": "detect"})
            assert r.status_code == 422 and r.json()["error"]["code"] == "url_blocked", bad
        r = c.post("/v1/jobs", json={"items": [url, METADATA], "task": "detect"})
        assert r.status_code == 202, r.json()
        job_id = r.json()["id"]
        deadline = time.monotonic() + 60
        while (job := c.get(f"/v1/jobs/{job_id}").json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert (job["state"], job["done"], job["failed"]) == ("done", 1, 1)
        lines = {
            json.loads(x)["key"]: json.loads(x)
            for x in c.get(f"/v1/jobs/{job_id}/results").text.splitlines()
        }
        assert lines[url]["ok"] and "person" in labels(lines[url]["result"])
        assert lines[METADATA]["error"].startswith("url_blocked:")
