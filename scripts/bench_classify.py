"""Benchmark: text classification on WordNet noun glosses, labeled with their lexicographer file.

Run from the project root with the project's venv, as a file (it imports the server harness from
the sibling `benchlib.py`):

    .venv/bin/python scripts/bench_classify.py [--wordnet DIR] [--train 4000] [--test 2000]

Data: Debian's `wordnet-base` package (WordNet 3.0). Without `--wordnet`, the script runs
`apt-get download wordnet-base` and `dpkg-deb -x` into a cache folder. Every noun synset's gloss
(the definition, without its quoted usage examples) is a text; its lexicographer file
(noun.animal, noun.artifact, ... 25 of them; noun.Tops, the few top-level synsets, is left out)
is its label. A seeded shuffle splits them into a training pool and a test set, both drawn from
all synsets (so the classes are as imbalanced as WordNet's: noun.artifact is the largest).

Learning curve, macro-F1 on the test set:
- zero-shot: each label's name ("animal", "artifact", ... the part after "noun.") against the
  glosses, with the service's prototypes and scores (`app.domain.classify.zeroshot`);
- few-shot: the service's classifier (`app.domain.classify.linear`: logistic regression,
  balanced class weights, C by size, the 25 label names as one anchor example each) trained on
  the first n glosses of R seeded shuffles of the training pool (n = 8 ... 256 labeled examples
  in all, not per class), mean and spread; beside it the same without the anchors;
- the same classifier on the whole training pool;
- a C sweep (1, 10, 100) at n = 64 and on the whole pool: why `choose_c`.

Timings: retrain (fit + cross-validation, `fit_and_score`, what a background run does after
embedding) at several sizes; then `prelabel serve` with only the embedder, POST /v1/classify
with one gloss, zero-shot against the 25 labels (their embeddings cached after the first call)
and few-shot after uploading 256 examples, p50 of M calls one at a time, against the in-process
embedding of one gloss (`SentenceEmbedder.run_batch`, same thread settings as the service).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from benchlib import default_prelabel, percentiles, serve  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

from app.domain.classify import zeroshot  # noqa: E402
from app.domain.classify.linear import anchored, fit  # noqa: E402
from app.domain.classify.trainer import fit_and_score  # noqa: E402
from app.inference.embedder import SentenceEmbedder  # noqa: E402
from app.inference.manifest import Manifest  # noqa: E402
from app.inference.session import SessionOptions, create_session, usable_cores  # noqa: E402

LEXNAMES = {
    4: "act", 5: "animal", 6: "artifact", 7: "attribute", 8: "body", 9: "cognition",
    10: "communication", 11: "event", 12: "feeling", 13: "food", 14: "group", 15: "location",
    16: "motive", 17: "object", 18: "person", 19: "phenomenon", 20: "plant", 21: "possession",
    22: "process", 23: "quantity", 24: "relation", 25: "shape", 26: "state", 27: "substance",
    28: "time",
}  # fmt: skip
SIZES = (8, 16, 32, 64, 128, 256)


def wordnet_dir(given: Path | None) -> Path:
    if given is not None:
        return given
    cache = Path(tempfile.gettempdir()) / "prelabel-wordnet"
    data = cache / "usr/share/wordnet"
    if (data / "data.noun").is_file():
        return data
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "wordnet-base"], cwd=cache, check=True)
    deb = next(cache.glob("wordnet-base_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(cache)], check=True)
    return data


def glosses(data: Path) -> list[tuple[str, str]]:
    """(definition, label) for every noun synset outside noun.Tops."""
    out = []
    for line in (data / "data.noun").read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(" ") or " | " not in line:
            continue  # the licence header
        head, gloss = line.split(" | ", 1)
        lexfile = int(head.split()[1])
        definition = gloss.split('; "')[0].strip().strip('"').strip()
        if lexfile in LEXNAMES and definition:
            out.append((definition, LEXNAMES[lexfile]))
    return out


def macro_f1(truth: list[str], guess: list[str], labels: list[str]) -> float:
    return float(f1_score(truth, guess, labels=labels, average="macro", zero_division=0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wordnet", type=Path, help="folder with WordNet's data.noun")
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--calls", type=int, default=100)
    args = ap.parse_args()

    rows = glosses(wordnet_dir(args.wordnet))
    random.Random(0).shuffle(rows)
    train, test = rows[: args.train], rows[args.train : args.train + args.test]
    labels = sorted(LEXNAMES.values())
    print(
        f"WordNet 3.0 noun glosses: {len(rows)} (25 labels); train pool {len(train)}, "
        f"test {len(test)}"
    )

    manifest = Manifest.load(PROJECT / "models")
    spec = manifest.get("minilm-l6-v2")
    cores = usable_cores()
    session = create_session(manifest.path(spec, "onnx"), SessionOptions("cpu", cores))
    emb = SentenceEmbedder(session, manifest.path(spec, "tokenizer"), spec.input.max_tokens)
    texts = [t for t, _ in train + test]
    # Embeddings are cached between runs (keyed by the model and the texts).
    key = hashlib.sha256("\n".join([spec.version, *texts]).encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"prelabel-bench-classify-{key}.npy"
    if cache.is_file():
        vecs = np.load(cache)
        print(f"embeddings of {len(texts)} glosses read from {cache}")
    else:
        t0 = time.perf_counter()
        vecs = np.concatenate(
            [np.stack(emb.run_batch(texts[i : i + 16])) for i in range(0, len(texts), 16)]
        )
        embed_s = time.perf_counter() - t0
        np.save(cache, vecs)
        print(
            f"embedded {len(texts)} glosses in {embed_s:.1f} s "
            f"({embed_s / len(texts) * 1000:.1f} ms each, batches of 16, {cores} cores)"
        )
    x_train, x_test = vecs[: len(train)], vecs[len(train) :]
    y_train, y_test = [y for _, y in train], [y for _, y in test]

    specs = [zeroshot.LabelSpec(name) for name in labels]
    protos = zeroshot.prototypes(specs, emb.run_batch([s.name for s in specs]))
    zs = zeroshot.similarities(x_test, protos).argmax(axis=1)
    zs_f1 = f"{macro_f1(y_test, [labels[k] for k in zs], labels):.3f}"
    curve: list[tuple[str, str, str]] = [("0 (zero-shot, label names)", zs_f1, "")]

    names = np.stack(emb.run_batch([zeroshot.readable(n) for n in labels]))

    def few_shot(n: int, c: float | None = None, anchors: bool = True) -> list[float]:
        out = []
        for r in range(args.repeats if n < len(train) else 1):
            idx = list(range(len(train)))
            random.Random(100 + r).shuffle(idx)
            pick = idx[:n]
            ys = [(y_train[i],) for i in pick]
            xs, ts = anchored(x_train[pick], ys, names if anchors else None, labels)
            if len({t[0] for t in ts}) < 2:
                continue
            model = fit(xs, ts, False, c)
            guess = model.predict_proba(x_test).argmax(axis=1)
            out.append(macro_f1(y_test, [model.labels[k] for k in guess], labels))
        return out

    for n in (*SIZES, len(train)):
        served_f1 = few_shot(n)
        plain_f1 = few_shot(n, anchors=False)
        curve.append(
            (
                str(n),
                f"{np.mean(served_f1):.3f} ± {np.std(served_f1):.3f}",
                f"{np.mean(plain_f1):.3f} ± {np.std(plain_f1):.3f}",
            )
        )
    print(
        "\n| labeled examples | macro-F1, the service's classifier (examples + label anchors) "
        "| without anchors |\n|---:|---:|---:|"
    )
    for n_, f1, plain in curve:
        print(f"| {n_} | {f1} | {plain} |")

    print(f"\nC sweep, with anchors (macro-F1):\n| C | n=64 | n={len(train)} |\n|---:|---:|---:|")
    for c in (1.0, 10.0, 100.0):
        small, whole = np.mean(few_shot(64, c)), np.mean(few_shot(len(train), c))
        print(f"| {c:g} | {small:.3f} | {whole:.3f} |")

    print(
        "\nRetrain (fit + k-fold CV, one thread of work):\n| examples | fit s | cv s | folds |"
        "\n|---:|---:|---:|---:|"
    )
    for n in (64, 256, 1000, len(train)):
        _, s = fit_and_score(x_train[:n], [(y,) for y in y_train[:n]], False, names, labels)
        print(f"| {n} | {s['fit_s']:.2f} | {s['cv_s']:.2f} | {s['cv_folds']} |")

    one = test[0][0]
    inproc = []
    for _ in range(args.calls):
        t = time.perf_counter()
        emb.run_batch([one])
        inproc.append((time.perf_counter() - t) * 1000)
    served(args, labels, train, one, percentiles(inproc)["p50"])


def served(
    args: argparse.Namespace,
    labels: list[str],
    train: list[tuple[str, str]],
    one: str,
    inproc_p50: float,
) -> None:
    env = {
        "PRELABEL_MODELS": '["minilm-l6-v2"]',
        "PRELABEL_DEFAULT_DETECTOR": "",
        "PRELABEL_DEFAULT_SAM": "",
        "PRELABEL_DEFAULT_NER": "",
        "PRELABEL_AUTO_TRAIN": "false",
    }
    log_dir = Path(tempfile.mkdtemp(prefix="bench-classify-"))
    with (
        serve(default_prelabel(), env, log_dir) as server,
        httpx.Client(base_url=server.url, timeout=60) as c,
    ):
        examples = [{"text": t, "label": y} for t, y in train[:256]]
        c.post("/v1/projects/bench/examples", json={"examples": examples}).raise_for_status()
        t0 = time.perf_counter()
        model = c.post("/v1/projects/bench/train?wait=true").json()
        train_s = time.perf_counter() - t0
        print(
            f"\nserved retrain of 256 examples (embed + fit + CV): {train_s:.2f} s, "
            f"model {model['version']}, cv accuracy {model['cv_accuracy']}"
        )
        result = {}
        for name, body in (
            ("zero-shot, 25 labels", {"texts": [one], "labels": labels}),
            ("few-shot project", {"texts": [one], "project": "bench"}),
        ):
            for _ in range(5):
                c.post("/v1/classify", json=body).raise_for_status()
            ms = []
            for _ in range(args.calls):
                t = time.perf_counter()
                c.post("/v1/classify", json=body).raise_for_status()
                ms.append((time.perf_counter() - t) * 1000)
            result[name] = percentiles(ms)["p50"]
    shutil.rmtree(log_dir, ignore_errors=True)
    print(f"\n| one gloss | p50 ms |\n|---|---:|\n| in-process embedding | {inproc_p50:.1f} |")
    for name, p50 in result.items():
        print(f"| POST /v1/classify, {name} | {p50:.1f} |")


if __name__ == "__main__":
    main()
