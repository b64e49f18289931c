"""POST /v1/tokens on the real spaCy pipeline: POS, lemmas, dependencies, CoNLL-U, Label
Studio `Labels`, limits and bad input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from spacy.training.converters.conllu_to_docs import conllu_to_docs

from app.config import Settings
from app.main import create_app

TEXT = "Apple is looking at buying U.K. startup for $1 billion. The geese were flying south."


@pytest.fixture(scope="module")
def tc() -> Iterator[TestClient]:
    settings = Settings(
        models=["en-core-web-sm", "pii"], default_detector="", default_sam="", max_texts=4
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        assert c.get("/readyz").status_code == 200
        yield c


def test_pos_lemmas_heads_with_exact_offsets(tc: TestClient) -> None:
    r = tc.post("/v1/tokens", json={"texts": [TEXT, "  "]})
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["model"] == "en-core-web-sm"
    toks, empty = (res["tokens"] for res in body["results"])
    assert empty == []
    assert all(TEXT[t["start"] : t["end"]] == t["text"] for t in toks)
    words = [(t["text"], t["pos"], t["lemma"]) for t in toks]
    assert words[:3] == [
        ("Apple", "PROPN", "Apple"),
        ("is", "AUX", "be"),
        ("looking", "VERB", "look"),
    ]
    assert words[-6:] == [
        ("The", "DET", "the"),
        ("geese", "NOUN", "goose"),
        ("were", "AUX", "be"),
        ("flying", "VERB", "fly"),
        ("south", "ADV", "south"),
        (".", "PUNCT", "."),
    ]
    geese, flying = toks[-5], toks[-3]
    assert geese["tag"] == "NNS" and geese["morph"] == "Number=Plur" and geese["dep"] == "nsubj"
    assert toks[geese["head"]] == flying and flying["dep"] == "ROOT"
    assert toks.index(flying) == flying["head"]
    assert [t["sentence"] for t in toks] == [0] * 12 + [1] * 6


def test_whitespace_is_not_a_token_and_unicode_offsets(tc: TestClient) -> None:
    text = "😀 Zoë  sang.\n\nShe left."
    [res] = tc.post("/v1/tokens", json={"texts": [text]}).json()["results"]
    got = [(t["start"], t["end"], t["text"]) for t in res["tokens"]]
    assert [g[2] for g in got if not g[2].strip()] == []
    assert (2, 5, "Zoë") in got and (14, 17, "She") in got
    assert all(text[s:e] == w for s, e, w in got)
    assert all(0 <= t["head"] < len(got) for t in res["tokens"])


def test_conllu_reads_back_with_spacys_own_reader(tc: TestClient) -> None:
    r = tc.post("/v1/tokens", json={"texts": [TEXT, "Hello world!"], "format": "conllu"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()
    assert lines[:3] == [
        "# sent_id = 1-1",
        "# text = Apple is looking at buying U.K. startup for $1 billion.",
        "1\tApple\tApple\tPROPN\tNNP\tNumber=Sing\t3\tnsubj\t_\t_",
    ]
    assert "9\t$\t$\tSYM\t$\t_\t11\tquantmod\t_\tSpaceAfter=No" in lines
    assert "4\tflying\tfly\tVERB\tVBG\tAspect=Prog|Tense=Pres|VerbForm=Part\t0\troot\t_\t_" in lines
    docs = list(conllu_to_docs(r.text, n_sents=1, no_print=True))  # type: ignore[no-untyped-call]
    assert [d.text.strip() for d in docs] == [
        "Apple is looking at buying U.K. startup for $1 billion.",
        "The geese were flying south.",
        "Hello world!",
    ]
    geese = docs[1]
    assert [t.lemma_ for t in geese] == ["the", "goose", "be", "fly", "south", "."]
    assert [t.head.i for t in geese] == [1, 3, 3, 3, 3, 3]


def test_labelstudio_pos_labels(tc: TestClient) -> None:
    r = tc.post("/v1/tokens", json={"texts": ["The geese flew."], "format": "labelstudio"})
    assert r.status_code == 200
    [task] = r.json()
    assert task["data"] == {"text": "The geese flew."}
    [pred] = task["predictions"]
    assert pred["model_version"].startswith("en-core-web-sm-")
    values = [
        (x["value"]["start"], x["value"]["end"], x["value"]["labels"]) for x in pred["result"]
    ]
    assert values == [(0, 3, ["DET"]), (4, 9, ["NOUN"]), (10, 14, ["VERB"]), (14, 15, ["PUNCT"])]
    assert {(x["from_name"], x["to_name"], x["type"]) for x in pred["result"]} == {
        ("pos", "text", "labels")
    }


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"texts": []}, 422, "texts"),
        ({"texts": ["a"] * 5}, 422, "at most 4"),
        ({"texts": ["a"], "model": "nope"}, 404, "nope"),
        ({"texts": ["a"], "model": "pii"}, 404, "parts of speech"),
        ({"texts": ["a"], "format": "xml"}, 422, "format"),
        ({"texts": "a"}, 422, "texts"),
        ({"texts": ["a"], "extra": 1}, 422, "extra"),
    ],
)
def test_bad_input_is_a_json_4xx(
    tc: TestClient, body: dict[str, object], status: int, needle: str
) -> None:
    r = tc.post("/v1/tokens", json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]


def test_batcher_models_and_metrics(tc: TestClient) -> None:
    models = {m["name"]: m for m in tc.get("/v1/models").json()["models"]}
    names = [b["name"] for b in models["en-core-web-sm"]["batching"]]
    assert names == ["en-core-web-sm", "en-core-web-sm/tokens"]
    r = tc.post("/v1/tokens", json={"texts": ["One.", "Two."], "priority": "bulk"})
    assert r.status_code == 200
    assert 'model="en-core-web-sm/tokens"' in tc.get("/metrics").text


def test_lone_surrogate_is_a_422(tc: TestClient) -> None:
    raw = b'{"texts": ["ok", "\\ud800"]}'
    r = tc.post("/v1/tokens", content=raw, headers={"content-type": "application/json"})
    # The body parser refuses it before the service's own surrogate check (which spaCy needs).
    assert r.status_code == 422 and "escape" in r.json()["error"]["message"]
