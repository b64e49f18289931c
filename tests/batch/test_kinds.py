"""`prelabel annotate --task keypoints|ocr|tokens` and `prelabel merge` in-process, on the real
MoveNet MultiPose, PP-OCRv4 and spaCy models, real photographs and real texts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from spacy.training.converters.conllu_to_docs import conllu_to_docs

from app.batch.checkpoint import read_lines
from app.cli.main import main

from .conftest import SKIMAGE_DATA

OCR_DATA = Path(__file__).parent.parent / "data" / "ocr"
SIGN_WORDS = ["NOTICE", "DOUBLE", "PARKING", "PROHIBITED", "AT ALLTIMES"]
TEXTS = [
    "Apple is looking at buying U.K. startup for $1 billion.",
    "The geese were flying south. They landed near the lake.",
    "Ms. Rivera reads two books a week.",
    "Nothing here.",
]


def annotate(src: Path, out: Path, task: str, fmt: str, *extra: str) -> int:
    argv = ["annotate", str(src), "--task", task, "--format", fmt, "--out", str(out)]
    return main([*argv, *extra])


def records(out: Path) -> dict[str, Any]:
    return {r["key"]: r["record"] for r in read_lines(out / "results.jsonl") if r["ok"]}


@pytest.fixture()
def people(tmp_path: Path) -> Path:
    """The astronaut (one person) and a cup of coffee (nobody), one in a subfolder."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    shutil.copyfile(SKIMAGE_DATA / "astronaut.png", tmp_path / "in" / "astronaut.png")
    shutil.copyfile(SKIMAGE_DATA / "coffee.png", tmp_path / "in" / "sub" / "coffee.png")
    return tmp_path / "in"


@pytest.fixture()
def texts(tmp_path: Path) -> Path:
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


def test_keypoints_one_person_inside_its_box_and_coco_loads_and_scores(
    tmp_path: Path, people: Path
) -> None:
    out = tmp_path / "out"
    assert annotate(people, out, "keypoints", "coco") == 0
    recs = records(out)
    assert set(recs) == {"astronaut.png", "sub/coffee.png"}
    assert recs["sub/coffee.png"]["instances"] == []
    assert recs["sub/coffee.png"]["uncertainty"] == 1.0
    astronaut = recs["astronaut.png"]
    assert (astronaut["width"], astronaut["height"]) == (512, 512)
    [person] = astronaut["instances"]
    assert person["label"] == "person" and person["score"] > 0.4
    x1, y1, x2, y2 = person["box"]
    assert [x1, y1, x2, y2] == pytest.approx([17.6, 11.1, 361.2, 509.1], abs=3)
    seen = [k for k in person["keypoints"] if k["score"] >= 0.3]
    assert {"nose", "left_eye", "right_eye", "left_shoulder", "right_shoulder"} <= {
        k["name"] for k in seen
    }
    assert all(x1 <= k["x"] <= x2 and y1 <= k["y"] <= y2 for k in seen)
    assert astronaut["uncertainty"] == pytest.approx(1 - person["score"])

    gt = COCO(str(out / "annotations.json"))
    [cat] = gt.loadCats(gt.getCatIds())
    assert cat["name"] == "person" and len(cat["keypoints"]) == 17 and len(cat["skeleton"]) == 19
    assert sorted(im["file_name"] for im in gt.dataset["images"]) == [
        "astronaut.png",
        "sub/coffee.png",
    ]
    [ann] = gt.dataset["annotations"]
    assert ann["num_keypoints"] == len(seen) and len(ann["keypoints"]) == 51
    # The same checkpoint exported again as COCO results scores AP 1 against it.
    assert annotate(people, out, "keypoints", "coco-results") == 0
    results = json.loads((out / "results.json").read_text())
    ev = COCOeval(gt, gt.loadRes(results), iouType="keypoints")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_keypoints_yolo_pose_and_label_studio(tmp_path: Path, people: Path) -> None:
    assert annotate(people, tmp_path / "y", "keypoints", "yolo") == 0
    assert (tmp_path / "y" / "classes.txt").read_text() == "person\n"
    [row] = (tmp_path / "y" / "labels" / "astronaut.txt").read_text().splitlines()
    values = [float(v) for v in row.split()]
    assert values[0] == 0 and len(values) == 1 + 4 + 17 * 3
    assert all(0 <= v <= 1 for v in values[1:5])
    assert (tmp_path / "y" / "labels" / "sub" / "coffee.txt").read_text() == ""
    assert annotate(people, tmp_path / "ls", "keypoints", "labelstudio") == 0
    tasks = {
        t["data"]["image"]: t for t in json.loads((tmp_path / "ls" / "tasks.json").read_text())
    }
    result = tasks["astronaut.png"]["predictions"][0]["result"]
    [rect] = [r for r in result if r["type"] == "rectanglelabels"]
    points = [r for r in result if r["type"] == "keypointlabels"]
    assert rect["value"]["rectanglelabels"] == ["person"] and len(points) >= 5
    assert all(p["parentID"] == rect["id"] for p in points)
    assert tasks["sub/coffee.png"]["predictions"][0]["result"] == []


def test_ocr_reads_the_signs_words(tmp_path: Path) -> None:
    assert annotate(OCR_DATA, tmp_path / "out", "ocr", "jsonl") == 0
    rows = {r["file_name"]: r for r in read_lines(tmp_path / "out" / "predictions.jsonl")}
    assert set(rows) == {"scenetext01.jpg", "scenetext02.jpg"}
    sign = rows["scenetext01.jpg"]
    assert (sign["width"], sign["height"]) == (800, 600)
    assert [ln["text"] for ln in sign["lines"]] == SIGN_WORDS
    assert sign["lines"][0]["polygon"] == [[275, 34], [429, 32], [429, 75], [275, 77]]
    assert {"Sports Centre", "Conference Centre", "Car Parks"} <= {
        ln["text"] for ln in rows["scenetext02.jpg"]["lines"]
    }
    rec = records(tmp_path / "out")["scenetext01.jpg"]
    assert set(rec["lines"][0]) == {"polygon", "text", "score", "box_score", "rotated"}
    assert rec["uncertainty"] == pytest.approx(max(1 - ln["score"] for ln in rec["lines"]))
    # Label Studio OCR: a polygon and a textarea with the same id per line.
    assert annotate(OCR_DATA, tmp_path / "out", "ocr", "labelstudio") == 0
    tasks = json.loads((tmp_path / "out" / "tasks.json").read_text())
    assert [t["data"]["image"] for t in tasks] == ["scenetext01.jpg", "scenetext02.jpg"]
    result = tasks[0]["predictions"][0]["result"]
    texts = [r["value"]["text"][0] for r in result if r["type"] == "textarea"]
    assert texts == SIGN_WORDS
    polys = [r["id"] for r in result if r["type"] == "polygon"]
    assert polys == [r["id"] for r in result if r["type"] == "textarea"]


def test_tokens_conllu_reads_back_in_spacy(tmp_path: Path, texts: Path) -> None:
    assert annotate(texts, tmp_path / "out", "tokens", "conllu") == 0
    conllu = (tmp_path / "out" / "predictions.conllu").read_text(encoding="utf-8")
    docs = list(conllu_to_docs(conllu, no_print=True))  # type: ignore[no-untyped-call]
    # Sentences: one, two, one and one; every token written, in order.
    recs = records(tmp_path / "out")
    assert sorted(recs) == ["1", "2", "3", "4"]
    words = [t.text for d in docs for t in d]
    assert words == [t["text"] for k in sorted(recs) for t in recs[k]["tokens"]]
    assert "# sent_id = 2-2" in conllu and "# text = They landed near the lake." in conllu
    lemmas = {t.text: t.lemma_ for d in docs for t in d}
    assert lemmas["geese"] == "goose" and lemmas["reads"] == "read"
    pos = {t.text: t.pos_ for d in docs for t in d}
    assert pos["Apple"] == "PROPN" and pos["flying"] == "VERB"
    rec = recs["2"]
    assert rec["text"] == TEXTS[1] and rec["uncertainty"] is None
    assert all(rec["text"][t["start"] : t["end"]] == t["text"] for t in rec["tokens"])
    # Label Studio: a `labels` region per token, its UPOS, the text's key as data.id.
    assert annotate(texts, tmp_path / "out", "tokens", "labelstudio") == 0
    tasks = json.loads((tmp_path / "out" / "tasks.json").read_text())
    assert [t["data"]["id"] for t in tasks] == ["1", "2", "3", "4"]
    first = tasks[0]["predictions"][0]["result"][0]["value"]
    assert (first["start"], first["end"], first["labels"]) == (0, 5, ["PROPN"])


def test_shards_merge_and_resume_for_tokens(tmp_path: Path, texts: Path) -> None:
    assert annotate(texts, tmp_path / "all", "tokens", "conllu") == 0
    for i in range(2):
        extra = ("--shard-index", str(i), "--shard-count", "2")
        assert annotate(texts, tmp_path / f"s{i}", "tokens", "conllu", *extra) == 0
    s0, s1 = records(tmp_path / "s0"), records(tmp_path / "s1")
    assert not set(s0) & set(s1) and set(s0) | set(s1) == {"1", "2", "3", "4"}
    assert (
        main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")])
        == 0
    )
    merged = (tmp_path / "m" / "predictions.conllu").read_text(encoding="utf-8")
    assert merged == (tmp_path / "all" / "predictions.conllu").read_text(encoding="utf-8")
    # A resume with everything done recomputes nothing and writes the same file.
    (tmp_path / "all" / "predictions.conllu").unlink()
    assert annotate(texts, tmp_path / "all", "tokens", "conllu") == 0
    assert (tmp_path / "all" / "predictions.conllu").read_text(encoding="utf-8") == merged


def test_ocr_shards_merge_into_one_jsonl(tmp_path: Path) -> None:
    for i in range(2):
        extra = ("--shard-index", str(i), "--shard-count", "2")
        assert annotate(OCR_DATA, tmp_path / f"s{i}", "ocr", "jsonl", *extra) == 0
    assert (
        main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")])
        == 0
    )
    rows = read_lines(tmp_path / "m" / "predictions.jsonl")
    assert [r["file_name"] for r in rows] == ["scenetext01.jpg", "scenetext02.jpg"]
    assert [ln["text"] for ln in rows[0]["lines"]] == SIGN_WORDS


def test_wrong_items_formats_and_models(
    tmp_path: Path, texts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A format of another kind is a setup error, named with the task's own formats.
    assert annotate(texts, tmp_path / "a", "tokens", "coco") == 1
    assert "('conllu', 'labelstudio')" in capsys.readouterr().err
    # Texts for an image task: every item fails with the reason, the run goes on.
    assert annotate(texts, tmp_path / "b", "ocr", "jsonl") == 2
    errors = read_lines(tmp_path / "b" / "errors.jsonl")
    assert len(errors) == 4
    assert all(
        e["error"].startswith("bad_input: a text item needs --task ner or tokens") for e in errors
    )
    # A model without a tagger cannot give tokens.
    assert annotate(texts, tmp_path / "c", "tokens", "conllu", "--model", "pii") == 1
    assert "gives no parts of speech" in capsys.readouterr().err
    # A checkpoint of another task is refused.
    assert annotate(texts, tmp_path / "d", "tokens", "conllu") == 0
    assert annotate(texts, tmp_path / "d", "ner", "conll") == 1
    assert "holds results of another run (task" in capsys.readouterr().err
