"""Span projects (/v1/projects/{p}/examples with spans, /v1/projects/{p}/spans): a spaCy NER
component learned from annotated WordNet glosses (DRUG spans from WordNet's drug lexicon, see
scripts/bench_spans.py, which wrote tests/data/wordnet_drug_spans.jsonl) finds DRUG on held-out
glosses; merged with en_core_web_sm's spans for a mapped label; a restart serves the stored
model; a failing or hanging training process keeps the previous model and loses no example."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.runtime import Runtime
from tests.conftest import runtime_of

DATA = Path(__file__).resolve().parents[1] / "data" / "wordnet_drug_spans.jsonl"
ITEMS: list[dict[str, Any]] = [json.loads(x) for x in DATA.read_text("utf-8").splitlines()]
TRAIN, TEST = ITEMS[:150], ITEMS[-64:]  # disjoint (298 texts); 64 texts per request
LABELS = ["DRUG", "PLACE"]  # PLACE: en_core_web_sm's GPE, never annotated


def settings(state_db: Path, **extra: Any) -> Settings:
    return Settings(
        models=extra.pop("models", ["en-core-web-sm"]),
        default_detector="",
        default_sam="",
        default_ner="en-core-web-sm",
        state_db=state_db,
        **extra,
    )


def examples(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "text": x["text"],
            "spans": [{"start": s, "end": e, "label": lab} for s, e, lab in x["spans"]],
        }
        for x in items
    ]


def runtime(c: TestClient) -> Runtime:
    rt: Runtime = runtime_of(c)
    return rt


def drug_recall(results: list[dict[str, Any]], items: list[dict[str, Any]]) -> float:
    gold = found = 0
    for r, x in zip(results, items, strict=True):
        got = {(s["start"], s["end"]) for s in r["spans"] if s["label"] == "DRUG"}
        gold += len(x["spans"])
        found += sum((s, e) in got for s, e, _ in x["spans"])
    return found / gold


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A state file holding the project 'drugs' trained on TRAIN (one training run for the
    module), and that model's info."""
    db = tmp_path_factory.mktemp("spans") / "state.db"
    with TestClient(create_app(settings(db, auto_train=False))) as c:
        body = {
            "kind": "spans",
            "labels": LABELS,
            "pretrained": {"PLACE": "GPE"},
            "examples": examples(TRAIN),
        }
        r = c.post("/v1/projects/drugs/examples", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["kind"] == "spans" and r.json()["version"] is None
        info = c.post("/v1/projects/drugs/train?wait=true").json()
        assert info["last_error"] is None and info["version"].startswith("1-"), info
    yield db, info


def test_learned_drug_spans_on_held_out_glosses_merged_with_pretrained(
    trained: tuple[Path, dict[str, Any]],
) -> None:
    db, info = trained
    n_spans = sum(len(x["spans"]) for x in TRAIN)
    assert info["trained_on"] == 150 and info["examples_per_label"] == {"DRUG": n_spans}
    with TestClient(create_app(settings(db, auto_train=False))) as c:  # a restart
        texts = [x["text"] for x in TEST]
        r = c.post("/v1/projects/drugs/spans", json={"texts": texts})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["model_version"] == info["version"]
        assert out["pretrained"].startswith("en-core-web-sm@")
        recall = drug_recall(out["results"], TEST)
        assert recall >= 0.4, recall  # an untrained component finds none
        ner = c.post("/v1/ner", json={"texts": texts}).json()["results"]
        places = 0
        for text, res, pre in zip(texts, out["results"], ner, strict=True):
            learned = [s for s in res["spans"] if s["source"] == "project"]
            assert all(
                s["label"] == "DRUG" and text[s["start"] : s["end"]] == s["text"] for s in learned
            )
            expected = [
                (s["start"], s["end"], "PLACE")
                for s in pre["spans"]
                if s["label"] == "GPE"
                and not any(s["start"] < o["end"] and o["start"] < s["end"] for o in learned)
            ]
            merged = [
                (s["start"], s["end"], s["label"])
                for s in res["spans"]
                if s["source"] == "pretrained"
            ]
            assert merged == expected
            places += len(expected)
        assert places > 0  # the glosses name places (Sweden, ...)


def test_a_failing_or_hanging_training_keeps_the_model_and_the_examples(
    trained: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    db, info = trained
    with TestClient(create_app(settings(db, auto_train=False))) as c:
        trainer = runtime(c).projects.span_trainer
        assert trainer is not None
        more = examples(TEST[:10])
        r = c.post("/v1/projects/drugs/examples", json={"examples": more})
        assert r.status_code == 200 and r.json()["examples"] == 160 and r.json()["stale"]
        trainer.command = (sys.executable, "-c", "import sys; sys.exit('boom')")  # type: ignore[attr-defined]
        failed = c.post("/v1/projects/drugs/train?wait=true").json()
        assert "exited with 1" in failed["last_error"] and "boom" in failed["last_error"]
        assert failed["version"] == info["version"] and failed["examples"] == 160
        pid_file = tmp_path / "pid"
        hang = (
            "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)"
        )
        trainer.command = (sys.executable, "-c", hang, str(pid_file))  # type: ignore[attr-defined]
        trainer.timeout_s = 3.0
        hung = c.post("/v1/projects/drugs/train?wait=true").json()
        assert hung["last_error"] == "training took longer than 3 s"
        with pytest.raises(ProcessLookupError):  # killed and reaped, not left running
            os.kill(int(pid_file.read_text()), 0)
        r = c.post("/v1/projects/drugs/spans", json={"texts": [TEST[0]["text"]]}).json()
        assert r["model_version"] == info["version"]


def test_bad_span_examples_are_4xx_and_store_nothing(tmp_path: Path) -> None:
    s = settings(
        tmp_path / "s.db",
        auto_train=False,
        max_examples_per_call=20,
        models=["en-core-web-sm", "minilm-l6-v2"],
    )
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        ok = {"kind": "spans", "labels": ["DRUG"], "examples": examples(TRAIN[:2])}
        assert c.post("/v1/projects/p/examples", json=ok).status_code == 200
        text = "an analgesic and antipyretic"
        bad_spans = [
            [{"start": 3, "end": 99, "label": "DRUG"}],  # past the end
            [{"start": -1, "end": 3, "label": "DRUG"}],
            [{"start": 5, "end": 5, "label": "DRUG"}],  # empty
            [{"start": 2, "end": 3, "label": "DRUG"}],  # whitespace only
            [{"start": 3, "end": 12, "label": "DRUG"}, {"start": 10, "end": 16, "label": "DRUG"}],
            [{"start": 3, "end": 12, "label": "DOSAGE"}],  # not in the label set
            [{"start": 3, "end": 12, "label": " "}],
        ]
        for spans in bad_spans:
            body = {"examples": [*examples(TRAIN[2:4]), {"text": text, "spans": spans}]}
            r = c.post("/v1/projects/p/examples", json=body)
            assert r.status_code == 422, (spans, r.text)
            assert "Traceback" not in r.text
        mixed = {"examples": [{"text": text, "label": "DRUG"}, *examples(TRAIN[2:3])]}
        assert c.post("/v1/projects/p/examples", json=mixed).status_code == 422
        too_many = {"examples": examples(TRAIN[:21])}
        assert c.post("/v1/projects/p/examples", json=too_many).status_code == 422
        empty = {"examples": [{"text": " ", "spans": []}]}
        assert c.post("/v1/projects/p/examples", json=empty).status_code == 422
        other = {"kind": "spans", "labels": ["DRUG", "DOSE"], "examples": examples(TRAIN[2:3])}
        assert c.post("/v1/projects/p/examples", json=other).status_code == 409
        label = {"examples": [{"text": text, "label": "DRUG"}]}
        assert c.post("/v1/projects/p/examples", json=label).status_code == 409
        assert c.post("/v1/classify", json={"texts": [text], "project": "p"}).status_code == 409
        unmapped = {"kind": "spans", "labels": ["DRUG"], "pretrained": {"X": "GPE"}}
        r = c.post("/v1/projects/q/examples", json={**unmapped, "examples": examples(TRAIN[:1])})
        assert r.status_code == 422
        assert c.get("/v1/projects/q/model").status_code == 404
        assert c.get("/v1/projects/p/model").json()["examples"] == 2
        r = c.post("/v1/projects/p/spans", json={"texts": [""]})
        assert r.status_code == 422
        before = c.post("/v1/projects/p/spans", json={"texts": [text]}).json()
        assert before["model_version"] is None and before["results"] == [{"spans": []}]


def test_two_replicas_on_postgresql_serve_the_same_span_model(tmp_path: Path) -> None:
    from tests.postgres_server import postgres_server

    with postgres_server() as dsn:
        s = settings(tmp_path / "unused.db", state_dsn=dsn)  # uploads train in the background
        with TestClient(create_app(s)) as a, TestClient(create_app(s)) as b:
            body = {"kind": "spans", "examples": examples(TRAIN[:60])}
            assert a.post("/v1/projects/d/examples", json=body).status_code == 200
            v1 = a.post("/v1/projects/d/train?wait=true").json()  # waits for that run
            assert v1["version"].startswith("1-"), v1
            texts = [x["text"] for x in TRAIN[:60]]
            ra = a.post("/v1/projects/d/spans", json={"texts": texts}).json()
            rb = b.post("/v1/projects/d/spans", json={"texts": texts}).json()
            assert ra["model_version"] == rb["model_version"] == v1["version"]
            assert ra["results"] == rb["results"]
            assert drug_recall(rb["results"], TRAIN[:60]) >= 0.5  # its own training texts
        with TestClient(create_app(s)) as c:
            rc = c.post("/v1/projects/d/spans", json={"texts": texts}).json()
            assert rc["model_version"] == v1["version"] and rc["results"] == ra["results"]


def test_span_projects_belong_to_the_key_that_created_them(tmp_path: Path) -> None:
    from app.domain.apikeys import key_line
    from tests.api.test_projects import ALICE, BOB, ROOT

    keys = [
        key_line(ALICE, "user", "alice"),
        key_line(BOB, "user", "bob"),
        key_line(ROOT, "admin", "root"),
    ]
    s = settings(tmp_path / "state.db", api_keys=keys, auto_train=False)
    alice, bob, root = ({"Authorization": f"Bearer {k}"} for k in (ALICE, BOB, ROOT))
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        body = {"kind": "spans", "examples": examples(TRAIN[:3])}
        assert c.post("/v1/projects/a/examples", json=body).status_code == 401
        assert c.post("/v1/projects/a/examples", json=body, headers=alice).status_code == 200
        texts = {"texts": [TEST[0]["text"]]}
        assert c.post("/v1/projects/a/spans", json=texts, headers=bob).status_code == 404
        assert c.post("/v1/projects/a/examples", json=body, headers=bob).status_code == 409
        assert c.get("/v1/projects/a/model", headers=bob).status_code == 404
        assert c.post("/v1/projects/a/spans", json=texts, headers=root).status_code == 200
        assert c.get("/v1/projects/a/model", headers=alice).json()["examples"] == 3
        assert c.delete("/v1/projects/a", headers=root).status_code == 200
