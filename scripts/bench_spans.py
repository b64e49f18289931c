"""Benchmark: custom entity spans (a DRUG label) learned from annotated WordNet glosses.

Run from the project root with the project's venv:

    .venv/bin/python scripts/bench_spans.py [--wordnet DIR] [--sizes 25,50,100,200,400]
    .venv/bin/python scripts/bench_spans.py --write-fixture tests/data/wordnet_drug_spans.jsonl

Data: Debian's `wordnet-base` (WordNet 3.0; fetched with `apt-get download` as in
`bench_classify.py` when `--wordnet` is not given). The DRUG lexicon is every lemma of every
synset under `drug.n.01` (hyponyms, transitively) but outside `alcohol.n.01` (beverages),
lower-case, at least 4 characters, not a lemma of any noun synset outside that tree ("speed",
"pot" are ambiguous), nor an adjective or verb lemma ("acoustic", "sedative"). Texts are noun
glosses (definition and quoted examples); every whole-word, case-insensitive occurrence of a
lexicon lemma is a DRUG span (longest first, non-overlapping). Glosses of the drug synsets
themselves are left out (they are all about drugs). Texts with spans and as many texts
without (a seeded pick) are shuffled and split: the last quarter is the test set.

Learning curve: `app.inference.span_model.train` (the code the training process runs) on the
first n training texts, exact-match span precision / recall / F1 on the test set, and the same
recall counted only on test spans whose lemma no training text contains ("unseen").
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import TypedDict

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench_classify import wordnet_dir  # noqa: E402

from app.inference.span_model import Annotated, SpanModel, train  # noqa: E402

ROOT = "03247620"  # drug.n.01
ALCOHOL = "07884567"  # alcohol.n.01 (alcoholic beverages: WordNet files them under drugs)


class Item(TypedDict):
    """A gloss and its DRUG spans: [start, end) code-point offsets."""

    text: str
    spans: list[tuple[int, int, str]]


def synsets(data: Path) -> dict[str, tuple[list[str], list[str], str]]:
    """offset -> (lemmas, hyponym offsets, gloss)."""
    out: dict[str, tuple[list[str], list[str], str]] = {}
    for line in (data / "data.noun").read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):
            continue
        head, _, gloss = line.partition(" | ")
        f = head.split()
        n = int(f[3], 16)
        lemmas = [re.sub(r"\(.*\)$", "", f[4 + 2 * i]).replace("_", " ") for i in range(n)]
        p = 4 + 2 * n
        hypos = [
            f[p + 1 + 4 * k + 1]
            for k in range(int(f[p]))
            if f[p + 1 + 4 * k] in ("~", "~i") and f[p + 1 + 4 * k + 2] == "n"
        ]
        out[f[0]] = (lemmas, hypos, gloss.strip())
    return out


def build(data: Path, seed: int = 0) -> list[Item]:
    syn = synsets(data)
    tree: set[str] = set()
    todo = [ROOT]
    while todo:
        o = todo.pop()
        for h in syn[o][1]:
            if h not in tree and h != ALCOHOL:
                tree.add(h)
                todo.append(h)
    inside = {lem for o in tree for lem in syn[o][0]}
    outside = {lem.lower() for o, s in syn.items() if o not in tree for lem in s[0]}
    for pos_file in ("index.adj", "index.verb"):  # "acoustic", "cure": other parts of speech
        for line in (data / pos_file).read_text(encoding="utf-8").splitlines():
            if not line.startswith(" "):
                outside.add(line.split(" ", 1)[0].replace("_", " "))
    lexicon = sorted(
        {x for x in inside if x == x.lower() and len(x) >= 4 and x not in outside},
        key=lambda x: -len(x),
    )
    pattern = re.compile(r"\b(" + "|".join(re.escape(x) for x in lexicon) + r")\b", re.I)
    pos: list[Item] = []
    neg: list[Item] = []
    for o, (_, _, gloss) in sorted(syn.items()):
        if o in tree or o == ROOT or len(gloss) > 400:
            continue
        spans = [(m.start(), m.end(), "DRUG") for m in pattern.finditer(gloss)]
        (pos if spans else neg).append({"text": gloss, "spans": spans})
    rng = random.Random(seed)
    items = pos + rng.sample(neg, len(pos))
    rng.shuffle(items)
    return items


def evaluate(model: SpanModel, test: list[Item], seen: set[str]) -> dict[str, float]:
    texts = [t["text"] for t in test]
    found = model.predict(texts)
    tp = fp = fn = unseen = unseen_tp = 0
    for item, spans in zip(test, found, strict=True):
        gold = {(s, e) for s, e, _ in item["spans"]}
        got = {(s.start, s.end) for s in spans if s.label == "DRUG"}
        tp += len(gold & got)
        fp += len(got - gold)
        fn += len(gold - got)
        for s, e in gold:
            if str(item["text"])[s:e].lower() not in seen:
                unseen += 1
                unseen_tp += (s, e) in got
    p = tp / max(1, tp + fp)
    r = tp / max(1, tp + fn)
    return {
        "precision": round(p, 3),
        "recall": round(r, 3),
        "f1": round(2 * p * r / max(1e-9, p + r), 3),
        "unseen_recall": round(unseen_tp / max(1, unseen), 3),
        "unseen_spans": unseen,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wordnet", type=Path)
    ap.add_argument("--sizes", default="25,50,100,200,400")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--write-fixture", type=Path)
    args = ap.parse_args()
    items = build(wordnet_dir(args.wordnet))
    if args.write_fixture:
        lines = [json.dumps(x, ensure_ascii=False) for x in items]
        args.write_fixture.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{len(items)} texts -> {args.write_fixture}")
        return
    cut = len(items) * 3 // 4
    pool, test = items[:cut], items[cut:]
    n_spans = sum(len(x["spans"]) for x in test)
    print(f"{len(items)} texts ({len(pool)} train pool, {len(test)} test, {n_spans} test spans)")
    print("| annotated texts | spans | epochs | train s | P | R | F1 | recall on unseen lemmas |")
    print("|---|---|---|---|---|---|---|---|")
    for n in [int(x) for x in args.sizes.split(",")]:
        tr = pool[:n]
        examples: list[Annotated] = [(x["text"], x["spans"]) for x in tr]
        seen = {t[s:e].lower() for t, sp in examples for s, e, _ in sp}
        t0 = time.perf_counter()
        payload, metrics = train(examples, ["DRUG"], epochs=args.epochs)
        dt = time.perf_counter() - t0
        m = evaluate(SpanModel(payload), test, seen)
        spans = sum(len(sp) for _, sp in examples)
        print(
            f"| {n} | {spans} | {metrics['epochs']} | {dt:.1f} | {m['precision']} | "
            f"{m['recall']} | {m['f1']} | {m['unseen_recall']} ({m['unseen_spans']} spans) |"
        )


if __name__ == "__main__":
    main()
