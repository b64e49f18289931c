"""`prelabel annotate` / `merge` in-process, on the real detector and real images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO

from app.batch.checkpoint import Checkpoint, read_lines
from app.batch.serial import image_json, object_json
from app.cli.main import main

from .conftest import make_dataset


def annotate(src: Path, out: Path, *extra: str, fmt: str = "coco") -> int:
    argv = ["annotate", str(src), "--task", "detect", "--format", fmt, "--out", str(out)]
    return main([*argv, *extra])


def test_bad_items_are_recorded_and_good_ones_exported(tmp_path: Path) -> None:
    keys = make_dataset(tmp_path / "in", bad=True)
    assert annotate(tmp_path / "in", tmp_path / "out") == 2
    errors = {e["key"]: e["error"] for e in read_lines(tmp_path / "out" / "errors.jsonl")}
    assert set(errors) == {"corrupt.png", "notes.jpg"}
    assert errors["corrupt.png"].startswith("invalid_image:")
    assert errors["notes.jpg"].startswith("unsupported_media_type:")
    coco = COCO()
    coco.dataset = json.loads((tmp_path / "out" / "annotations.json").read_text())
    coco.createIndex()
    assert sorted(im["file_name"] for im in coco.dataset["images"]) == keys
    astronaut = next(i for i in coco.imgs.values() if i["file_name"] == "00_astronaut.png")
    labels = {coco.cats[a["category_id"]]["name"] for a in coco.imgToAnns[astronaut["id"]]}
    assert "person" in labels


def test_resume_processes_only_the_rest_and_exports_each_item_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = make_dataset(tmp_path / "in", copies=2)
    ck = Checkpoint(tmp_path / "out")
    # A marker record no model would produce: it must survive untouched (never recomputed).
    marker = image_json(keys[0], 7, 5, [object_json("person", (1, 1, 3, 3), 0.123)])
    ck.append_result(keys[0], marker)
    ck.append_result(keys[1], image_json(keys[1], 7, 5, []))
    ck.append_result(keys[1], image_json(keys[1], 7, 5, []))  # a duplicated line
    ck.close()
    assert annotate(tmp_path / "in", tmp_path / "out", fmt="jsonl") == 0
    out = capsys.readouterr().out
    assert f"{len(keys) - 2} processed this run, 2 skipped, 0 failed" in out
    rows = read_lines(tmp_path / "out" / "predictions.jsonl")
    assert [r["key"] for r in rows] == keys
    assert rows[0]["objects"] == marker["objects"]
    assert rows[2]["width"] > 7  # computed by the model


def test_merge_of_shards_equals_a_single_run(tmp_path: Path) -> None:
    keys = make_dataset(tmp_path / "in", copies=2, bad=True)
    assert annotate(tmp_path / "in", tmp_path / "all") == 2
    for i in range(2):
        rc = annotate(
            tmp_path / "in", tmp_path / f"s{i}", "--shard-index", str(i), "--shard-count", "2"
        )
        assert rc in (0, 2)
    shard_keys = [
        [r["key"] for r in read_lines(tmp_path / f"s{i}" / "results.jsonl")] for i in range(2)
    ]
    assert not set(shard_keys[0]) & set(shard_keys[1])
    assert (
        main(
            [
                "merge",
                str(tmp_path / "s0"),
                str(tmp_path / "s1"),
                "--out",
                str(tmp_path / "m"),
                "--format",
                "coco",
            ]
        )
        == 2
    )  # the bad items failed
    merged = json.loads((tmp_path / "m" / "annotations.json").read_text())
    single = json.loads((tmp_path / "all" / "annotations.json").read_text())
    assert [im["file_name"] for im in merged["images"]] == keys
    assert merged["images"] == single["images"]
    assert len(merged["annotations"]) == len(single["annotations"])


def test_setup_errors_exit_1(tmp_path: Path) -> None:
    assert annotate(tmp_path / "missing", tmp_path / "out") == 1
    make_dataset(tmp_path / "in")
    assert annotate(tmp_path / "in", tmp_path / "out", "--model", "nope") == 1
    assert annotate(tmp_path / "in", tmp_path / "out", fmt="conll") == 1
