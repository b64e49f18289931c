"""`prelabel merge` takes the shards' format from their run.json (recorded by `annotate`);
a given `--format` must agree with it. Real detector, real images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.batch.meta import read_meta, write_meta
from app.cli.main import main

from .conftest import make_dataset


def shards(tmp_path: Path, fmt: str) -> list[str]:
    make_dataset(tmp_path / "in")
    dirs = []
    for i in range(2):
        out = tmp_path / f"s{i}"
        argv = ["annotate", str(tmp_path / "in"), "--task", "detect", "--format", fmt]
        assert main([*argv, "--out", str(out), "--shard-index", str(i), "--shard-count", "2"]) == 0
        dirs.append(str(out))
    return dirs


def test_merge_defaults_to_the_shards_format_and_checks_a_given_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = shards(tmp_path, "coco")
    assert (read_meta(Path(dirs[0])) or {})["format"] == "coco"
    assert main(["merge", *dirs, "--out", str(tmp_path / "m")]) == 0
    merged = json.loads((tmp_path / "m" / "annotations.json").read_text())
    assert len(merged["images"]) == len([p for p in (tmp_path / "in").rglob("*") if p.is_file()])
    assert (read_meta(tmp_path / "m") or {})["format"] == "coco"
    assert main(["merge", *dirs, "--out", str(tmp_path / "m2"), "--format", "coco"]) == 0

    capsys.readouterr()
    assert main(["merge", *dirs, "--out", str(tmp_path / "m3"), "--format", "yolo"]) == 1
    assert "disagrees" in capsys.readouterr().err
    assert not (tmp_path / "m3").exists()

    # Shards from before formats were recorded: --format is needed, and then enough.
    for d in dirs:
        meta = read_meta(Path(d)) or {}
        write_meta(Path(d), {k: v for k, v in meta.items() if k != "format"})
    assert main(["merge", *dirs, "--out", str(tmp_path / "m4")]) == 1
    assert "give --format" in capsys.readouterr().err
    assert main(["merge", *dirs, "--out", str(tmp_path / "m4"), "--format", "yolo"]) == 0
    assert (tmp_path / "m4" / "classes.txt").exists()
