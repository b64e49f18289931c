"""A text (NER) project in a running Label Studio: "Retrieve predictions" stores `labels` spans
whose offsets are exactly those of Prelabel's /v1/ner for the same text."""

from __future__ import annotations

import httpx

from tests.labelstudio.stack import Stack

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Labels name="ner" toName="text">
    <Label value="Company" predicted_values="ORG"/><Label value="Place" predicted_values="GPE"/>
    <Label value="Person" predicted_values="PERSON"/>
  </Labels>
</View>"""
TEXTS = [
    "Apple opened an office in Paris, said Tim Cook.",
    "Ünïcode first: Angela Merkel visited Microsoft in Berlin 🙂 last May.",
]
LABELS = {"ORG": "Company", "GPE": "Place", "PERSON": "Person"}


def test_text_project_stores_spans_with_exact_offsets(stack: Stack) -> None:
    ls = stack.ls
    pid = ls.project("text spans", CONFIG)
    ls.import_tasks(pid, [{"text": t} for t in TEXTS])
    backend = ls.connect(pid, stack.prelabel)
    assert backend["state"] == "CO", backend
    tasks = ls.tasks(pid)
    ls.retrieve_predictions(pid, [t["id"] for t in tasks])
    answer = httpx.post(f"{stack.prelabel}/v1/ner", json={"texts": TEXTS}, timeout=60)
    assert answer.status_code == 200, answer.text
    for task, text, mine in zip(tasks, TEXTS, answer.json()["results"], strict=True):
        assert task["data"]["text"] == text
        [prediction] = ls.predictions(task["id"])
        spans = {
            (r["value"]["start"], r["value"]["end"], r["value"]["labels"][0], r["value"]["text"])
            for r in prediction["result"]
        }
        assert all(r["type"] == "labels" and r["from_name"] == "ner" for r in prediction["result"])
        expected = {
            (s["start"], s["end"], LABELS[s["label"]], s["text"])
            for s in mine["spans"]
            if s["label"] in LABELS
        }
        assert expected, f"spaCy finds nothing in {text!r}: the check would be empty"
        assert spans == expected
        assert all(text[s:e] == t for s, e, _, t in spans)
