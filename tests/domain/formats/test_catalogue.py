"""The format catalogue: one name per format and kind, older names resolved, and every batch
format of the catalogue written by the batch export and every HTTP one by the renderer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.batch.export import export
from app.cli.main import main
from app.domain.formats.catalogue import CATALOGUE, KINDS, Kind, accepted, formats, resolve
from app.domain.formats.records import ImageRecord, ObjectRecord, SpanRecord, TextRecord
from app.domain.formats.render import render_image, render_texts
from app.errors import ValidationFailed

META = {"classes": ["person", "cat"], "model_version": "m=1"}
IMAGES = {
    "a/x.jpg": {
        "file_name": "a/x.jpg",
        "width": 40,
        "height": 30,
        "objects": [{"label": "cat", "box": [1.0, 2.0, 21.0, 12.0], "score": 0.9}],
    }
}
TEXTS = {
    "0": {
        "text_id": "0",
        "text": "Ada met Bob.",
        "spans": [{"start": 0, "end": 3, "label": "PERSON", "score": None}],
    }
}


def test_names_are_unique_within_a_kind_and_aliases_never_shadow_a_name() -> None:
    for kind in KINDS:
        names = [f.name for f in CATALOGUE if f.kind == kind]
        aliases = [a for f in CATALOGUE if f.kind == kind for a in f.aliases]
        assert len(set(names)) == len(names), kind
        assert not set(aliases) & set(names), kind


def test_an_older_name_resolves_and_an_unknown_one_names_the_offered() -> None:
    assert resolve("jsonl", "text", "batch").name == "spacy-jsonl"
    assert resolve("jsonl", "text", "http").name == "spacy-jsonl"
    assert resolve("jsonl", "image", "batch").name == "jsonl"
    with pytest.raises(ValidationFailed, match="'coco-results'"):
        resolve("pascal", "image", "http")
    with pytest.raises(ValidationFailed):
        resolve("jsonl", "image", "http")  # the checkpoint's lines are a batch export only
    with pytest.raises(ValidationFailed):
        resolve("coco", "text", "batch")


@pytest.mark.parametrize("fmt", [f.name for f in formats("image", "batch")])
def test_every_image_batch_format_writes_its_catalogued_files(tmp_path: Path, fmt: str) -> None:
    (entry,) = [f for f in formats("image", "batch") if f.name == fmt]
    files = export(tmp_path, fmt, "detect", META, IMAGES)
    written = {p.relative_to(tmp_path).as_posix() for p in files}
    assert entry.files is not None
    expected = {s.strip().replace("<image path>", "a/x") for s in entry.files.split(",")}
    assert written == expected, (written, entry.files)
    assert all(p.read_text(encoding="utf-8") for p in files)


@pytest.mark.parametrize("fmt", [*(f.name for f in formats("text", "batch")), "jsonl"])
def test_every_text_batch_format_writes_its_catalogued_file(tmp_path: Path, fmt: str) -> None:
    entry = resolve(fmt, "text", "batch")
    [path] = export(tmp_path, fmt, "ner", META, TEXTS)
    assert path.relative_to(tmp_path).as_posix() == entry.files
    assert "Ada" in path.read_text(encoding="utf-8")


def test_http_and_batch_build_the_same_label_studio_task(tmp_path: Path) -> None:
    image = ImageRecord("a/x.jpg", 40, 30, (ObjectRecord("cat", (1.0, 2.0, 21.0, 12.0), 0.9),))
    one = json.loads(render_image(image, "labelstudio", META["classes"], "m=1").body)
    [path] = export(tmp_path, "labelstudio", "detect", META, IMAGES)
    assert json.loads(path.read_text(encoding="utf-8")) == [one]
    text = TextRecord("Ada met Bob.", (SpanRecord(0, 3, "PERSON"),))
    [http] = json.loads(render_texts([text], "labelstudio", "m=1").body)
    [batch] = json.loads(export(tmp_path, "labelstudio", "ner", META, TEXTS)[0].read_text())
    assert batch["predictions"] == http["predictions"]
    assert batch["data"] == {**http["data"], "id": "0"}  # batch texts keep their key


def test_the_cli_offers_the_catalogues_batch_names(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["annotate", "--help"])
    usage = capsys.readouterr().out
    choices = accepted(KINDS, "batch")
    assert "{" + ",".join(choices) + "}" in usage
    assert {"coco-results", "spacy-jsonl", "jsonl", "conllu"} <= set(choices)


KIND_META = {
    "classes": ["person"],
    "model_version": "m=1",
    "keypoint_names": ["nose", "tail"],
    "skeleton": [[1, 2]],
}
KIND_RECORDS: dict[str, dict[str, Any]] = {
    "keypoints": {
        "a/x.jpg": {
            "file_name": "a/x.jpg",
            "width": 40,
            "height": 30,
            "instances": [
                {
                    "label": "person",
                    "box": [1.0, 2.0, 21.0, 12.0],
                    "score": 0.9,
                    "keypoints": [
                        {"name": "nose", "x": 5.0, "y": 6.0, "score": 0.8},
                        {"name": "tail", "x": 9.0, "y": 10.0, "score": 0.1},
                    ],
                }
            ],
        }
    },
    "ocr": {
        "a/x.jpg": {
            "file_name": "a/x.jpg",
            "width": 40,
            "height": 30,
            "lines": [
                {
                    "polygon": [[1, 2], [21, 2], [21, 12], [1, 12]],
                    "text": "Ada",
                    "score": 0.9,
                    "box_score": 0.8,
                    "rotated": False,
                }
            ],
        }
    },
    "tokens": {
        "0": {
            "text_id": "0",
            "text": "Ada",
            "tokens": [
                {
                    "start": 0,
                    "end": 3,
                    "text": "Ada",
                    "pos": "PROPN",
                    "tag": "NNP",
                    "lemma": "Ada",
                    "dep": "ROOT",
                    "head": 0,
                    "sentence": 0,
                    "morph": "",
                }
            ],
        }
    },
}


TASK_KINDS: tuple[Kind, ...] = ("keypoints", "ocr", "tokens")  # each task is named as its kind


@pytest.mark.parametrize(
    ("kind", "fmt"), [(kind, f.name) for kind in TASK_KINDS for f in formats(kind, "batch")]
)
def test_every_keypoints_ocr_tokens_batch_format_writes_its_catalogued_files(
    tmp_path: Path, kind: Kind, fmt: str
) -> None:
    entry = resolve(fmt, kind, "batch")
    files = export(tmp_path, fmt, kind, KIND_META, KIND_RECORDS[kind])
    written = {p.relative_to(tmp_path).as_posix() for p in files}
    assert entry.files is not None
    expected = {s.strip().replace("<image path>", "a/x") for s in entry.files.split(",")}
    assert written == expected, (written, entry.files)
    assert all(p.read_text(encoding="utf-8") for p in files)
