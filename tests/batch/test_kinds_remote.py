"""`prelabel annotate --server URL --task keypoints|ocr|tokens` against a real `prelabel serve`
process (real models, photographs and texts): the same records, run.json and exports as
in-process, so a run moves between the two modes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.batch.checkpoint import read_lines
from app.cli.main import main

from .conftest import SKIMAGE_DATA
from .test_remote import running_server

OCR_DATA = Path(__file__).parent.parent / "data" / "ocr"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    env = {
        "PRELABEL_MODELS": "movenet-multipose,ppocr-v4,en-core-web-sm",
        "PRELABEL_DEFAULT_DETECTOR": "",
        "PRELABEL_DEFAULT_SAM": "",
    }
    with running_server(env) as url:
        yield url


def both(src: Path, tmp: Path, task: str, fmt: str, server: str) -> tuple[Path, Path]:
    """The same run in-process and against the server; the two output folders."""
    argv = ["annotate", str(src), "--task", task, "--format", fmt]
    assert main([*argv, "--out", str(tmp / "remote"), "--server", server]) == 0
    assert main([*argv, "--out", str(tmp / "local")]) == 0
    return tmp / "remote", tmp / "local"


def same_run(remote: Path, local: Path, export: str) -> None:
    """Equal checkpoint records, run.json and export file."""
    rows = [
        {r["key"]: r["record"] for r in read_lines(d / "results.jsonl")} for d in (remote, local)
    ]
    assert rows[0] == rows[1]
    metas = [json.loads((d / "run.json").read_text()) for d in (remote, local)]
    assert metas[0] == metas[1]
    assert (remote / export).read_bytes() == (local / export).read_bytes()


def test_remote_keypoints_equal_in_process(tmp_path: Path, server: str) -> None:
    (tmp_path / "in").mkdir()
    shutil.copyfile(SKIMAGE_DATA / "astronaut.png", tmp_path / "in" / "astronaut.png")
    remote, local = both(tmp_path / "in", tmp_path, "keypoints", "coco", server)
    same_run(remote, local, "annotations.json")
    coco = json.loads((remote / "annotations.json").read_text())
    assert len(coco["annotations"]) == 1 and coco["categories"][0]["keypoints"][0] == "nose"


def test_remote_ocr_equals_in_process(tmp_path: Path, server: str) -> None:
    remote, local = both(OCR_DATA, tmp_path, "ocr", "jsonl", server)
    same_run(remote, local, "predictions.jsonl")
    first = read_lines(remote / "predictions.jsonl")[0]
    assert first["lines"][0]["text"] == "NOTICE"


def test_remote_tokens_equal_in_process(tmp_path: Path, server: str) -> None:
    src = tmp_path / "t.jsonl"
    rows = [{"id": "a", "text": "The geese were flying south."}, {"id": "b", "text": "Hi."}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    remote, local = both(src, tmp_path, "tokens", "conllu", server)
    same_run(remote, local, "predictions.conllu")
    assert "# sent_id = a-1" in (remote / "predictions.conllu").read_text()
