"""kill -9 a real `prelabel annotate` part way, rerun it, and check nothing is lost or doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.batch.checkpoint import read_lines

from .conftest import make_dataset


def command(src: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "app.cli.main",
        "annotate",
        str(src),
        "--task",
        "segment",
        "--format",
        "coco",
        "--out",
        str(out),
        "--concurrency",
        "1",
    ]


def test_kill_9_then_rerun_exports_every_item_exactly_once(tmp_path: Path) -> None:
    keys = make_dataset(tmp_path / "in", copies=3)  # 12 images; SAM makes each take a while
    out = tmp_path / "out"
    cwd = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        command(tmp_path / "in", out), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    results = out / "results.jsonl"
    deadline = time.monotonic() + 120  # a safety net against a hang, not a timing assertion
    while len(read_lines(results)) < 2:
        assert proc.poll() is None, proc.communicate()[0].decode()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    finished = len({r["key"] for r in read_lines(results)})
    assert 2 <= finished < len(keys)

    rerun = subprocess.run(command(tmp_path / "in", out), cwd=cwd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(keys) - finished} processed this run, {finished} skipped" in rerun.stdout
    lines = [r["key"] for r in read_lines(results)]
    assert sorted(set(lines)) == keys and len(lines) == len(keys)
    doc = json.loads((out / "annotations.json").read_text())
    assert sorted(im["file_name"] for im in doc["images"]) == keys
    assert all("segmentation" in a for a in doc["annotations"])
