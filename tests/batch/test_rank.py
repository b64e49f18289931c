"""`prelabel rank` over a real `prelabel annotate` run: uncertainty order, and SAM-embedding
diversity that does not pick a photo and its near-duplicate copy both."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageEnhance

from app.batch.checkpoint import read_lines
from app.cli.main import main

from .conftest import SKIMAGE_DATA

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")


def _rank(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["rank", *argv]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_rank_an_annotate_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "images", tmp_path / "out"
    src.mkdir()
    for name in PHOTOS:
        shutil.copyfile(SKIMAGE_DATA / name, src / name)
    # rocket.jpg has nothing the detector knows: uncertain. Its slightly cropped and brightened
    # copy is a near-duplicate, as uncertain.
    im = Image.open(SKIMAGE_DATA / "rocket.jpg").convert("RGB")
    w, h = im.size
    twin = ImageEnhance.Brightness(im.crop((10, 10, w - 12, h - 8))).enhance(1.15)
    twin.save(src / "rocket_copy.jpg", quality=92)
    argv = ["annotate", str(src), "--task", "detect", "--format", "jsonl", "--out", str(out)]
    assert main(argv) == 0
    records = {line["key"]: line["record"] for line in read_lines(out / "results.jsonl")}
    astronaut = records["astronaut.png"]
    best = max(o["score"] for o in astronaut["objects"])
    assert astronaut["uncertainty"] == round(1 - best, 4)
    assert all(o["uncertainty"] == round(1 - o["score"], 4) for o in astronaut["objects"])
    assert records["rocket.jpg"]["objects"] == [] and records["rocket.jpg"]["uncertainty"] == 1.0
    everything = _rank(capsys, str(out), "-k", "5")
    us = [p["uncertainty"] for p in everything]
    assert us == sorted(us, reverse=True)
    assert {p["key"] for p in everything[:2]} == {"rocket.jpg", "rocket_copy.jpg"}
    assert everything[0]["uncertainty"] == 1.0 and everything[0]["difficulty"] == "hard"
    assert everything[-1]["key"] == "astronaut.png"  # the clearest person
    div = _rank(capsys, str(out), "-k", "2", "--diversity", "kcenter", "--root", str(src))
    assert div[0]["key"] == "rocket.jpg" and div[1]["key"] != "rocket_copy.jpg"
    assert div == _rank(capsys, str(out), "-k", "2", "--diversity", "kcenter", "--root", str(src))
    rnd = _rank(capsys, str(out), "-k", "5", "--strategy", "random", "--seed", "3")
    assert rnd == _rank(capsys, str(out), "-k", "5", "--strategy", "random", "--seed", "3")
    assert sorted(p["key"] for p in rnd) == sorted(p["key"] for p in everything)
