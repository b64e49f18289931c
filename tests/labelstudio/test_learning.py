"""A text project with its own Choices in a running Label Studio learns from its annotators.

The Choices are routing codes of a support team's codebook ("Q-17" is refunds): their names say
nothing, so zero-shot routes the held-out messages wrong, and only a classifier trained on the
annotations routes them right. Prelabel runs here with only the sentence embedder and with
automatic training off, so each step is seen on its own: annotations submitted through Label
Studio's API reach Prelabel as ANNOTATION_CREATED webhooks and become examples, and only "Start
Training" (`POST /api/ml/<id>/train`: with Label Studio 1.23.2's default flags a START_TRAINING
webhook, which Prelabel answers by pulling the project's export) trains; then "Retrieve
predictions" stores the learned codes under a new model_version. A project labeled before the
backend was connected starts from its existing annotations (pulled on /setup). A Labels project
with an entity type no pretrained model has (DRUG) learns it from annotated spans.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.domain.labelstudio.choices import classifier_name
from app.domain.labelstudio.config import parse_label_config
from app.domain.labelstudio.examples import span_targets, targets
from app.domain.labelstudio.learning import project_uid
from tests.domain.test_classify import SUPPORT
from tests.labelstudio.servers import Service, free_port, start_prelabel
from tests.labelstudio.stack import ROOT, Stack

# Zero-shot on these names routes the held-out messages
# (refunds, bugs, praise, two each): none right with this codebook.
CODES = {"refund": "Q-17", "bug": "Q-08", "praise": "Q-42"}
CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="queue" toName="text" choice="single-radio">
    <Choice value="Q-08"/><Choice value="Q-17"/><Choice value="Q-42"/>
  </Choices>
</View>"""
ANNOTATED = {t: CODES[intent] for intent, texts in SUPPORT.items() for t in texts[:4]}
HELD_OUT = {t: CODES[intent] for intent, texts in SUPPORT.items() for t in texts[4:]}


@dataclass
class Learner:
    url: str
    service: Service

    def model(self, name: str) -> dict[str, Any] | None:
        r = httpx.get(f"{self.url}/v1/projects/{name}/model", timeout=30)
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        found: dict[str, Any] = r.json()
        return found


@pytest.fixture(scope="module")
def learner(stack: Stack) -> Iterator[Learner]:
    """Prelabel with only the embedder, its state in a SQLite file, automatic training off."""
    port = free_port()
    env = {
        "PRELABEL_MODELS": "minilm-l6-v2",
        "PRELABEL_DEFAULT_DETECTOR": "",
        "PRELABEL_DEFAULT_SAM": "",
        "PRELABEL_DEFAULT_NER": "",
        "PRELABEL_LABEL_STUDIO_URL": stack.ls_hostname,
        "PRELABEL_STATE_DB": str(stack.work / "learning-state.db"),
        "PRELABEL_AUTO_TRAIN": "false",
    }
    service = start_prelabel(sys.executable, ROOT, port, stack.work, "prelabel-learning", env)
    try:
        service.wait_http(f"http://127.0.0.1:{port}/readyz", 300)
        yield Learner(f"http://127.0.0.1:{port}", service)
    finally:
        service.stop()
    log = service.text()
    assert "Traceback" not in log and "learning failed" not in log, service.log


def name_of(stack: Stack, project: int) -> str:
    """The classify project Prelabel keeps this project's `queue` examples in."""
    uid = project_uid(stack.ls.call("GET", f"/api/projects/{project}"))
    assert uid is not None
    [target] = targets(parse_label_config(CONFIG))
    return classifier_name(stack.ls_hostname, uid, target)


def until(what: Callable[[], Any], ok: Callable[[Any], bool], seconds: float = 120) -> Any:
    """Poll `what()` until `ok` holds of it; its last value otherwise (the assert says)."""
    deadline = time.monotonic() + seconds
    while True:
        got = what()
        if ok(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def queue(code: str) -> list[dict[str, Any]]:
    """An annotation's result choosing `code`, as the editor submits it."""
    return [
        {
            "from_name": "queue",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": [code]},
        }
    ]


def chosen(prediction: dict[str, Any]) -> str:
    [result] = prediction["result"]
    assert result["type"] == "choices" and result["from_name"] == "queue", result
    [code] = result["value"]["choices"]
    return str(code)


def test_annotations_and_start_training_teach_the_codes(stack: Stack, learner: Learner) -> None:
    ls = stack.ls
    pid = ls.project("support queues", CONFIG)
    ls.import_tasks(pid, [{"text": t} for t in [*ANNOTATED, *HELD_OUT]])
    ids = {t["data"]["text"]: int(t["id"]) for t in ls.tasks(pid)}
    backend = ls.connect(pid, learner.url)
    assert backend["state"] == "CO", backend
    name = name_of(stack, pid)
    held = [ids[t] for t in HELD_OUT]

    # Before any label: zero-shot over the codes, version "<base>.zs".
    ls.retrieve_predictions(pid, held)
    zero = {tid: ls.predictions(tid) for tid in held}
    assert all(len(p) == 1 for p in zero.values()), zero
    v0 = zero[held[0]][0]["model_version"]
    assert v0.endswith(".zs") and all(p[0]["model_version"] == v0 for p in zero.values())
    zero_right = sum(chosen(zero[ids[t]][0]) == code for t, code in HELD_OUT.items())

    # Annotators label 4 messages per queue: each annotation reaches Prelabel as a webhook and
    # becomes an example, without a restart and (automatic training off) without a model.
    annotations = {t: ls.annotate(ids[t], queue(code)) for t, code in ANNOTATED.items()}
    model = until(lambda: learner.model(name), lambda m: m is not None and m["examples"] == 12)
    assert model is not None and model["examples"] == 12, model
    assert model["examples_per_label"] == {"Q-08": 4, "Q-17": 4, "Q-42": 4}
    assert model["version"] is None

    # "Start Training": Label Studio posts START_TRAINING and waits; Prelabel pulls the export,
    # trains, and answers when the model is stored.
    ls.call("POST", f"/api/ml/{backend['id']}/train")
    model = learner.model(name)
    assert model is not None and model["version"] is not None, model
    assert model["version"].startswith("1-") and not model["stale"] and model["trained_on"] == 12

    # "Retrieve predictions" again: a new version, the learned codes, the old predictions kept.
    ls.retrieve_predictions(pid, held)
    v1 = f"{v0.removesuffix('.zs')}.{model['version']}"
    for text, code in HELD_OUT.items():
        found = ls.predictions(ids[text])
        assert sorted(p["model_version"] for p in found) == sorted([v0, v1]), found
        [learned] = [p for p in found if p["model_version"] == v1]
        assert chosen(learned) == code, (text, learned)
        assert learned["score"] is not None  # Label Studio sorts and filters by it
    assert zero_right <= 2, f"zero-shot routed {zero_right} of 6 right: the codes say too much"
    ls.retrieve_predictions(pid, held)  # nothing new to predict: no duplicate
    assert all(len(ls.predictions(tid)) == 2 for tid in held)

    # One more annotation arrives as a webhook; deleting it (ANNOTATIONS_DELETED) removes it.
    first = next(iter(HELD_OUT))
    extra = ls.annotate(ids[first], queue(HELD_OUT[first]))
    model = until(lambda: learner.model(name), lambda m: m["examples"] == 13)
    assert model["examples"] == 13 and model["stale"], model
    ls.call("DELETE", f"/api/annotations/{extra}")
    model = until(lambda: learner.model(name), lambda m: m["examples"] == 12)
    assert model["examples"] == 12, model
    assert annotations  # the ids Label Studio gave (keys of the examples: ann-<id>)


def test_a_half_labeled_project_starts_from_its_annotations(stack: Stack, learner: Learner) -> None:
    """Annotations made before the backend was connected (no webhook saw them) are pulled from
    Label Studio on /setup."""
    ls = stack.ls
    pid = ls.project("half labeled queues", CONFIG)
    ls.import_tasks(pid, [{"text": t} for t in ANNOTATED])
    for task in ls.tasks(pid):
        ls.annotate(int(task["id"]), queue(ANNOTATED[task["data"]["text"]]))
    name = name_of(stack, pid)
    assert learner.model(name) is None
    backend = ls.connect(pid, learner.url)  # /setup: the pull starts in the background
    assert backend["state"] == "CO", backend
    model = until(lambda: learner.model(name), lambda m: m is not None and m["examples"] == 12)
    assert model is not None and model["examples"] == 12, model
    assert model["examples_per_label"] == {"Q-08": 4, "Q-17": 4, "Q-42": 4}


SPANS_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Labels name="ner" toName="text"><Label value="DRUG" background="red"/></Labels>
</View>"""
DRUGS = ROOT / "tests" / "data" / "wordnet_drug_spans.jsonl"


def all_task_ids(stack: Stack, project: int) -> dict[str, int]:
    """Text -> task id over every page of the task list (100 a page)."""
    ids: dict[str, int] = {}
    for page in range(1, 100):
        params = {"project": project, "page_size": 100, "page": page}
        r = stack.ls.http.get("/api/tasks", params=params)
        if r.status_code == 404:  # past the last page
            break
        assert r.status_code == 200, r.text
        ids.update({t["data"]["text"]: int(t["id"]) for t in r.json()["tasks"]})
    return ids


def test_annotated_spans_teach_a_custom_entity_type(stack: Stack, learner: Learner) -> None:
    """WordNet glosses with DRUG spans (tests/data/wordnet_drug_spans.jsonl): no pretrained
    model has DRUG; 150 glosses annotated in Label Studio and "Start Training" give a span
    model that marks DRUG in held-out glosses."""
    items = [json.loads(x) for x in DRUGS.read_text("utf-8").splitlines()]
    train, held = items[:150], items[-64:]
    ls = stack.ls
    pid = ls.project("drug spans", SPANS_CONFIG)
    ls.import_tasks(pid, [{"text": x["text"]} for x in [*train, *held]])
    ids = all_task_ids(stack, pid)
    assert len(ids) == len(train) + len(held)
    backend = ls.connect(pid, learner.url)
    assert backend["state"] == "CO", backend
    uid = project_uid(ls.call("GET", f"/api/projects/{pid}"))
    assert uid is not None
    [target] = span_targets(parse_label_config(SPANS_CONFIG))
    name = classifier_name(stack.ls_hostname, uid, target)
    for x in train:
        result = [
            {
                "id": f"s{s}",
                "from_name": "ner",
                "to_name": "text",
                "type": "labels",
                "value": {"start": s, "end": e, "text": x["text"][s:e], "labels": [label]},
            }
            for s, e, label in x["spans"]
        ]
        ls.annotate(ids[x["text"]], result)
    model = until(lambda: learner.model(name), lambda m: m is not None and m["examples"] == 150)
    assert model is not None and model["examples"] == 150 and model["version"] is None, model

    ls.call("POST", f"/api/ml/{backend['id']}/train")
    model = until(lambda: learner.model(name), lambda m: m["version"] is not None, 300)
    assert model["version"] is not None, model

    held_ids = [ids[x["text"]] for x in held]
    ls.retrieve_predictions(pid, held_ids)
    gold = found = 0
    for x, tid in zip(held, held_ids, strict=True):
        [prediction] = ls.predictions(tid)
        assert prediction["model_version"].endswith(f".{model['version']}"), prediction
        spans = {(r["value"]["start"], r["value"]["end"]) for r in prediction["result"]}
        assert all(r["value"]["labels"] == ["DRUG"] for r in prediction["result"])
        gold += len(x["spans"])
        found += sum((s, e) in spans for s, e, _ in x["spans"])
    assert gold and found / gold >= 0.4, (found, gold)  # nothing without the learned model
