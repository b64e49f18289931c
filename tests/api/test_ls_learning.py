"""Label Studio learning in process, on the real MiniLM embedder: `POST /train` as Label Studio
1.23.2 sends it with its START_TRAINING flag off (every annotated task), the model version in
/setup and /predict, annotation webhooks updating and removing examples, a failed pull counted
once. The same flows against a running Label Studio: tests/labelstudio/test_learning.py."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.domain.labelstudio.choices import classifier_name
from app.domain.labelstudio.config import parse_label_config
from app.domain.labelstudio.examples import targets
from app.main import create_app
from tests.domain.test_classify import SUPPORT
from tests.labelstudio.servers import free_port

CONFIG = """<View><Text name="text" value="$text"/>
  <Choices name="queue" toName="text"><Choice value="Q-08"/><Choice value="Q-17"/>
  <Choice value="Q-42"/></Choices></View>"""
CODES = {"refund": "Q-17", "bug": "Q-42", "praise": "Q-08"}
PROJECT = "3.1700000000"
ABOUT = {"id": 3, "created_at": "2023-11-14T22:13:20.123Z", "label_config": CONFIG}


def exported() -> list[dict[str, Any]]:
    """Every annotated task as Label Studio's /train and JSON export write them: 4 per code."""
    tasks = []
    for i, (intent, texts) in enumerate(SUPPORT.items()):
        for j, text in enumerate(texts[:4]):
            n = 10 * i + j
            result = [pick(CODES[intent])]
            ann = {"id": 100 + n, "result": result, "was_cancelled": False, "task": n}
            tasks.append({"id": n, "data": {"text": text}, "annotations": [ann]})
    return tasks


def pick(code: str) -> dict[str, Any]:
    return {
        "from_name": "queue",
        "to_name": "text",
        "type": "choices",
        "value": {"choices": [code]},
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    # The operator's Label Studio on a closed loopback port: the /setup pull fails at once.
    ls_url = f"http://127.0.0.1:{free_port()}"
    s = Settings(
        models=["minilm-l6-v2"],
        default_detector="",
        default_sam="",
        default_ner="",
        state_db=tmp_path / "state.db",
        auto_train=False,
        label_studio_url=ls_url,
    )
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        c.headers["x-ls"] = ls_url
        yield c


def name(c: TestClient) -> str:
    [target] = targets(parse_label_config(CONFIG))
    return classifier_name(c.headers["x-ls"], PROJECT, target)


def model(c: TestClient) -> dict[str, Any]:
    r = c.get(f"/v1/projects/{name(c)}/model")
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


def until(what: Callable[[], Any], ok: Callable[[Any], bool], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while not ok(got := what()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


def setup(c: TestClient) -> str:
    body = {
        "project": PROJECT,
        "schema": CONFIG,
        "hostname": c.headers["x-ls"],
        "access_token": "t",
    }
    r = c.post("/setup", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["model_version"])


def test_train_then_setup_and_predict_carry_the_new_version(client: TestClient) -> None:
    c = client
    v0 = setup(c)
    assert v0.endswith(".zs")
    held = [
        {"id": 90 + i, "data": {"text": t}} for i, ts in enumerate(SUPPORT.values()) for t in ts[4:]
    ]
    truth = [CODES[intent] for intent, ts in SUPPORT.items() for _ in ts[4:]]

    r = c.post(
        "/train", json={"annotations": exported(), "project": PROJECT, "label_config": CONFIG}
    )
    assert r.status_code == 200 and r.json() == {"status": "ok", "training": "done"}, r.text
    m = model(c)
    assert m["examples"] == 12 and m["version"].startswith("1-") and not m["stale"]
    v1 = setup(c)
    assert v1 == f"{v0.removesuffix('.zs')}.{m['version']}"

    r = c.post("/predict", json={"tasks": held, "project": PROJECT, "label_config": CONFIG})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [p["model_version"] for p in results] == [v1] * len(held)
    assert [p["result"][0]["value"]["choices"] for p in results] == [[t] for t in truth]

    # The pull /setup started could not reach Label Studio: one log line, one count.
    line = 'prelabel_ls_background_failures_total{kind="learning",reason="fetch_failed"} 1.0'
    assert line in until(lambda: c.get("/metrics").text, lambda text: line in text)


def test_webhooks_update_and_remove_examples(client: TestClient) -> None:
    c = client
    setup(c)
    assert c.post("/train", json={"annotations": exported(), "project": PROJECT}).status_code == 200
    assert model(c)["examples_per_label"] == {"Q-08": 4, "Q-17": 4, "Q-42": 4}

    task = exported()[0]
    updated = {
        "action": "ANNOTATION_UPDATED",
        "annotation": {"id": 100, "task": task["id"], "result": [pick("Q-08")]},
        "task": task,
        "project": ABOUT,
    }
    assert c.post("/webhook", json=updated).json() == {"status": "ok"}
    got = until(lambda: model(c), lambda m: m["examples_per_label"]["Q-08"] == 5)
    assert got["examples_per_label"] == {"Q-08": 5, "Q-17": 3, "Q-42": 4} and got["stale"]

    deleted = {
        "action": "ANNOTATIONS_DELETED",
        "annotations": [{"id": 100}, {"id": 101}],
        "project": ABOUT,
    }
    assert c.post("/webhook", json=deleted).json() == {"status": "ok"}
    got = until(lambda: model(c), lambda m: m["examples"] == 10)
    assert got["examples_per_label"] == {"Q-08": 4, "Q-17": 2, "Q-42": 4}

    # /train is the whole set: annotations missing from it are removed.
    r = c.post("/train", json={"annotations": exported()[4:], "project": PROJECT})
    assert r.json()["training"] == "done"
    assert model(c)["examples_per_label"] == {"Q-08": 4, "Q-42": 4}


SPANS_CONFIG = """<View><Text name="text" value="$text"/>
  <Labels name="ner" toName="text"><Label value="DRUG"/></Labels></View>"""
DRUGS = Path(__file__).resolve().parents[1] / "data" / "wordnet_drug_spans.jsonl"


def drug_tasks(items: list[dict[str, Any]], first_id: int) -> list[dict[str, Any]]:
    """WordNet glosses with their DRUG spans as Label Studio exports annotated tasks."""
    tasks = []
    for n, x in enumerate(items, first_id):
        result = [
            {
                "id": f"r{n}-{s}",
                "from_name": "ner",
                "to_name": "text",
                "type": "labels",
                "value": {"start": s, "end": e, "text": x["text"][s:e], "labels": [label]},
            }
            for s, e, label in x["spans"]
        ]
        ann = {"id": 1000 + n, "result": result, "was_cancelled": False, "task": n}
        tasks.append({"id": n, "data": {"text": x["text"]}, "annotations": [ann]})
    return tasks


def test_labels_learn_custom_spans_from_train(tmp_path: Path) -> None:
    """A Labels control with an entity type no pretrained model has (DRUG): /train with 150
    annotated glosses trains its span project; /predict then finds DRUG in held-out glosses
    under the new version (before, nothing: no model knows DRUG)."""
    items = [json.loads(x) for x in DRUGS.read_text("utf-8").splitlines()]
    train, held = items[:150], items[-64:]
    s = Settings(
        models=["en-core-web-sm"],
        default_detector="",
        default_sam="",
        state_db=tmp_path / "s.db",
        auto_train=False,
    )
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        setup = {"project": PROJECT, "schema": SPANS_CONFIG}
        v0 = c.post("/setup", json=setup).json()["model_version"]
        tasks = drug_tasks(held, 5000)
        predict = {"tasks": tasks, "project": PROJECT, "label_config": SPANS_CONFIG}
        before = c.post("/predict", json=predict).json()["results"]
        assert [p["result"] for p in before] == [[]] * len(held)  # no model knows DRUG

        r = c.post("/train", json={"annotations": drug_tasks(train, 0), "project": PROJECT})
        assert r.status_code == 200 and r.json()["training"] == "done", r.text
        v1 = c.post("/setup", json=setup).json()["model_version"]
        assert v1 != v0 and v1.startswith(v0.removesuffix(".zs") + ".1-")
        after = c.post("/predict", json=predict).json()["results"]
        assert {p["model_version"] for p in after} == {v1}
        gold = found = 0
        for p, x in zip(after, held, strict=True):
            got = {(r["value"]["start"], r["value"]["end"]) for r in p["result"]}
            assert all(r["value"]["labels"] == ["DRUG"] for r in p["result"])
            gold += len(x["spans"])
            found += sum((s, e) in got for s, e, _ in x["spans"])
        assert gold and found / gold >= 0.4, (found, gold)
