"""Benchmark: active learning on the WordNet noun glosses of scripts/bench_classify.py.
    .venv/bin/python scripts/bench_active.py [--wordnet DIR] [--seeds 5] [--round 16] [--rounds 7]

Same data, split and classifier as the learning curve (4000-gloss pool, 2000-gloss test set, 25
labels; the service's logistic regression with label anchors). Per seed: a random seed set of
`--round` labeled glosses, then `--rounds` rounds that each label `--round` more, picked by
`app.domain.ranking.pick` (least_confidence / margin / entropy over the classifier's
probabilities on the unlabeled pool, or random; each without diversity and with k-center on the
MiniLM embeddings, keeping away from the labeled ones); the classifier is refitted after every
round and scored (macro-F1) on the test set. Mean ± sd over seeds.

Label efficiency: the fewest labels with which a strategy's mean macro-F1 reaches random
sampling's at 128 labels (goal: at most 2/3 of them, 85).

Near-duplicates: 500 pool glosses get a twin (the gloss lower-cased, with "; that is" and its
first three words appended, embedded by MiniLM: a near-duplicate text, cosine ~0.9-0.97); the
share of picked items whose twin was labeled before (seed set included), with and without
diversity.

Embeddings are cached in the temp folder (the pool and test texts under bench_classify.py's key).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "scripts"))
from bench_classify import LEXNAMES, glosses, macro_f1, wordnet_dir  # noqa: E402

from app.domain import ranking, uncertainty  # noqa: E402
from app.domain.classify import zeroshot  # noqa: E402
from app.domain.classify.linear import anchored, fit  # noqa: E402
from app.inference.embedder import SentenceEmbedder  # noqa: E402
from app.inference.manifest import Manifest  # noqa: E402
from app.inference.session import SessionOptions, create_session, usable_cores  # noqa: E402

STRATEGIES: tuple[ranking.Method, ...] = ("least_confidence", "margin", "entropy", "random")
DIVERSITIES: tuple[ranking.Diversity, ...] = ("none", "kcenter")


def cached_embed(emb: SentenceEmbedder, version: str, texts: list[str], tag: str) -> np.ndarray:
    key = hashlib.sha256("\n".join([version, *texts]).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"prelabel-bench-{tag}-{key}.npy"
    if path.is_file():
        cached: np.ndarray = np.load(path)
        return cached
    t0 = time.perf_counter()
    vecs = np.concatenate(
        [np.stack(emb.run_batch(texts[i : i + 16])) for i in range(0, len(texts), 16)]
    )
    np.save(path, vecs)
    print(f"embedded {len(texts)} texts in {time.perf_counter() - t0:.0f} s -> {path}")
    return vecs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wordnet", type=Path)
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--round", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--twins", type=int, default=500)
    args = ap.parse_args()
    t_start = time.perf_counter()

    rows = glosses(wordnet_dir(args.wordnet))
    random.Random(0).shuffle(rows)
    train, test = rows[: args.train], rows[args.train : args.train + args.test]
    labels = sorted(LEXNAMES.values())
    manifest = Manifest.load(PROJECT / "models")
    spec = manifest.get("minilm-l6-v2")
    session = create_session(manifest.path(spec, "onnx"), SessionOptions("cpu", usable_cores()))
    emb = SentenceEmbedder(session, manifest.path(spec, "tokenizer"), spec.input.max_tokens)
    vecs = cached_embed(emb, spec.version, [t for t, _ in train + test], "classify")
    x_pool, x_test = vecs[: len(train)], vecs[len(train) :]
    y_pool, y_test = [y for _, y in train], [y for _, y in test]
    names = np.stack(emb.run_batch([zeroshot.readable(n) for n in labels]))

    def run(
        x: np.ndarray,
        y: list[str],
        method: ranking.Method,
        div: ranking.Diversity,
        seed: int,
        twin_of: np.ndarray | None = None,
    ) -> tuple[list[float], float]:
        """Macro-F1 after the seed set and each round; share of picks whose twin was labeled."""
        rng = np.random.default_rng(seed)
        labeled = [int(i) for i in rng.choice(len(y), args.round, replace=False)]
        f1s, dup, picked = [], 0, 0
        for r in range(args.rounds + 1):
            xs, ts = anchored(x[labeled], [(y[i],) for i in labeled], names, labels)
            model = fit(xs, ts, False)
            guess = model.predict_proba(x_test).argmax(axis=1)
            f1s.append(macro_f1(y_test, [model.labels[k] for k in guess], labels))
            if r == args.rounds:
                break
            rest = np.setdiff1d(np.arange(len(y)), labeled)
            u = uncertainty.of_probs(
                model.predict_proba(x[rest]), method if method != "random" else "margin"
            )
            picks = ranking.pick(
                u, args.round, method, div, x[rest], x[labeled], seed=seed * 100 + r
            )
            new = [int(rest[i]) for i in picks]
            if twin_of is not None:
                have = set(labeled)
                for i in new:
                    dup += int(twin_of[i] >= 0 and int(twin_of[i]) in have)
                    have.add(i)
                picked += len(new)
            labeled += new
        return f1s, dup / max(1, picked)

    sizes = [args.round * (r + 1) for r in range(args.rounds + 1)]
    print(
        f"pool {len(train)}, test {len(test)}, 25 labels, seed set {args.round}, "
        f"{args.rounds} rounds of {args.round}, {args.seeds} seeds"
    )
    curves: dict[tuple[ranking.Method, ranking.Diversity], np.ndarray] = {}
    for method in STRATEGIES:
        for div in DIVERSITIES:
            curves[(method, div)] = np.array(
                [run(x_pool, y_pool, method, div, s)[0] for s in range(args.seeds)]
            )
    target = curves[("random", "none")][:, -1].mean()
    print(
        f"\n| strategy | diversity | {' | '.join(str(n) for n in sizes)} | labels to reach "
        f"random@{sizes[-1]} ({target:.3f}) |\n|---|---|" + "---:|" * (len(sizes) + 1)
    )
    for (method, div), c in curves.items():
        mean, sd = c.mean(0), c.std(0)
        reach = next((n for n, m in zip(sizes, mean, strict=True) if m >= target), None)
        eff = f"{reach} ({sizes[-1] / reach:.2f}x)" if reach else f"> {sizes[-1]}"
        cells = " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(mean, sd, strict=True))
        print(f"| {method} | {div} | {cells} | {eff} |")

    # Near-duplicates: twins of `--twins` pool glosses join the pool.
    tw_rng = random.Random(1)
    src = sorted(tw_rng.sample(range(len(train)), args.twins))
    twin_texts = [
        f"{train[i][0].lower()}; that is {' '.join(train[i][0].split()[:3])}" for i in src
    ]
    x_tw = cached_embed(emb, spec.version, twin_texts, "active-twins")
    cos = (x_pool[src] * x_tw).sum(1)
    x2 = np.vstack([x_pool, x_tw])
    y2 = y_pool + [y_pool[i] for i in src]
    twin_of = np.full(len(y2), -1)
    for j, i in enumerate(src):
        twin_of[i], twin_of[len(train) + j] = len(train) + j, i
    print(
        f"\nnear-duplicates: {args.twins} twins (cosine to the original: min {cos.min():.3f}, "
        f"median {np.median(cos):.3f}), pool {len(y2)}: share of picks whose twin was "
        f"labeled before\n| strategy | no diversity | k-center |\n|---|---:|---:|"
    )
    for method in STRATEGIES:
        share_cells = []
        for div in DIVERSITIES:
            shares = [run(x2, y2, method, div, s, twin_of)[1] for s in range(args.seeds)]
            share_cells.append(f"{np.mean(shares):.3f} ± {np.std(shares):.3f}")
        print(f"| {method} | {' | '.join(share_cells)} |")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
