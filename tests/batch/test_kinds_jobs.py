"""/v1/jobs with the tasks keypoints, ocr and tokens, on the real MoveNet MultiPose, PP-OCRv4
and spaCy models and real photographs and texts: one job per kind, its results in the HTTP
answers' shapes and its export in the job's format; bad submissions for these tasks."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pycocotools.coco import COCO
from spacy.training.converters.conllu_to_docs import conllu_to_docs

from app.config import Settings
from app.main import create_app
from tests.batch.conftest import SKIMAGE_DATA
from tests.batch.test_jobs_api import ended, result_lines, wait_for

OCR_DATA = Path(__file__).parent.parent / "data" / "ocr"
SIGN_WORDS = ["NOTICE", "DOUBLE", "PARKING", "PROHIBITED", "AT ALLTIMES"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kind-jobs")
    (root / "in").mkdir()
    shutil.copyfile(SKIMAGE_DATA / "astronaut.png", root / "in" / "astronaut.png")
    shutil.copyfile(OCR_DATA / "scenetext01.jpg", root / "in" / "sign.jpg")
    return root


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[TestClient]:
    settings = Settings(
        models=["movenet-multipose", "ppocr-v4", "en-core-web-sm", "pii"],
        default_detector="",
        default_sam="",
        jobs_db=root / "jobs.db",
        job_input_roots=[str(root / "in")],
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        assert c.get("/readyz").status_code == 200, c.get("/readyz").json()
        yield c


def run_job(client: TestClient, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.json()
    job_id = str(r.json()["id"])
    job = wait_for(client, job_id, ended)
    assert job["state"] == "done" and job["failed"] == 0, job
    return job_id, result_lines(client, job_id)


def test_a_keypoints_job_finds_the_astronaut_and_exports_coco(
    client: TestClient, root: Path
) -> None:
    path = str(root / "in" / "astronaut.png")
    job_id, lines = run_job(client, {"task": "keypoints", "items": [path], "format": "coco"})
    [line] = lines
    rec = line["result"]
    # The /v1/keypoints answer's instance shape.
    [person] = rec["instances"]
    assert set(person) == {"label", "box", "score", "keypoints"}
    x1, y1, x2, y2 = person["box"]
    seen = [k for k in person["keypoints"] if k["score"] >= 0.3]
    assert len(seen) >= 5 and all(x1 <= k["x"] <= x2 and y1 <= k["y"] <= y2 for k in seen)
    r = client.get(f"/v1/jobs/{job_id}/export")
    assert r.status_code == 200, r.text
    coco = COCO()
    coco.dataset = r.json()
    coco.createIndex()
    [ann] = coco.dataset["annotations"]
    assert ann["num_keypoints"] == len(seen)
    assert coco.dataset["categories"][0]["skeleton"][0] == [16, 14]
    # A per-image format of the same job comes as a zip.
    r = client.get(f"/v1/jobs/{job_id}/export", params={"format": "yolo"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    r = client.get(f"/v1/jobs/{job_id}/export", params={"format": "conllu"})
    assert r.status_code == 422 and "annotations" not in r.text


def test_an_ocr_job_reads_the_sign(client: TestClient, root: Path) -> None:
    path = str(root / "in" / "sign.jpg")
    job_id, [line] = run_job(client, {"task": "ocr", "items": [path], "format": "labelstudio"})
    assert [ln["text"] for ln in line["result"]["lines"]] == SIGN_WORDS
    [task] = client.get(f"/v1/jobs/{job_id}/export").json()
    result = task["predictions"][0]["result"]
    assert [r["value"]["text"][0] for r in result if r["type"] == "textarea"] == SIGN_WORDS
    r = client.get(f"/v1/jobs/{job_id}/export", params={"format": "jsonl"})
    assert r.status_code == 200
    assert [ln["text"] for ln in json.loads(r.text)["lines"]] == SIGN_WORDS


def test_a_tokens_job_exports_conllu(client: TestClient) -> None:
    texts = ["The geese were flying south.", "Ada reads books."]
    job_id, lines = run_job(client, {"task": "tokens", "texts": texts, "format": "conllu"})
    assert [ln["key"] for ln in lines] == ["0", "1"]
    toks = lines[0]["result"]["tokens"]
    assert [(t["text"], t["lemma"], t["pos"]) for t in toks][:2] == [
        ("The", "the", "DET"),
        ("geese", "goose", "NOUN"),
    ]
    r = client.get(f"/v1/jobs/{job_id}/export")
    assert r.status_code == 200
    docs = list(conllu_to_docs(r.text, no_print=True))  # type: ignore[no-untyped-call]
    assert [t.text for d in docs for t in d] == [
        "The", "geese", "were", "flying", "south", ".", "Ada", "reads", "books", ".",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"task": "tokens", "items": ["x.png"]}, 422, "takes 'texts'"),
        ({"task": "ocr", "texts": ["hello"]}, 422, "takes 'items'"),
        ({"task": "tokens", "texts": ["a"], "format": "coco"}, 422, "conllu"),
        ({"task": "tokens", "texts": ["a"], "model": "pii"}, 404, "no parts of speech"),
        ({"task": "keypoints", "texts": ["a"], "model": "ppocr-v4"}, 422, "takes 'items'"),
        ({"task": "ocr", "items": ["a.png"], "model": "movenet-multipose"}, 404, "unknown"),
        ({"task": "keypoints", "items": ["a.png"], "score_threshold": 2}, 422, "score_threshold"),
    ],
)
def test_bad_submissions_for_the_new_tasks(
    client: TestClient, body: dict[str, Any], status: int, says: str
) -> None:
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == status, r.json()
    assert says in r.json()["error"]["message"]
