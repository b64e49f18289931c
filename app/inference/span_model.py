"""A project's learned entity recogniser: a spaCy `ner` component on a blank English pipeline
(spaCy's own tokenizer and hash-embedding CNN features; no pretrained weights), trained on the
project's annotated spans.

Training runs in a separate process (`python -m app.inference.span_model`, see `main`): it reads
`{"labels": [...], "examples": [[text, [[start, end, label], ...]], ...], "epochs": n,
"seed": s, "budget_s": t}` as JSON on stdin and writes `{"model": <payload>, "metrics": {...}}`
as JSON on stdout, so the server can kill it at its deadline. The payload is spaCy's own
serialisation, never pickle: `{"format", "spacy", "config": nlp.config.to_str(),
"bytes": base64(nlp.to_bytes())}`.

Offsets everywhere are [start, end) code points (Python `str` indices). An annotated span that
does not fall on token boundaries is widened to the tokens it touches; one that then overlaps
the previous span of its text is dropped (counted in `metrics["dropped_spans"]`).
"""

from __future__ import annotations

import base64
import json
import random
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from app.inference.ner import EntitySpan

FORMAT = "spacy-ner/1"
Annotated = tuple[str, Sequence[tuple[int, int, str]]]


def train(
    examples: Sequence[Annotated],
    labels: Sequence[str],
    epochs: int = 20,
    seed: int = 0,
    budget_s: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Blocking (seconds to minutes): (payload, metrics). Stops after `epochs`, or earlier once
    `budget_s` has passed (checked between epochs; the caller's kill is the hard bound)."""
    import spacy
    from spacy.about import __version__ as spacy_version
    from spacy.training import Example
    from spacy.util import fix_random_seed, minibatch  # type: ignore[attr-defined]

    t0 = time.perf_counter()
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    ner: Any = nlp.add_pipe("ner")
    for label in labels:
        ner.add_label(label)
    data: list[Example] = []
    dropped = 0
    for text, spans in examples:
        ref = nlp.make_doc(text)
        ents: list[Any] = []
        for start, end, label in sorted(spans):
            span = ref.char_span(start, end, label=label, alignment_mode="expand")
            if span is None or (ents and span.start < ents[-1].end):
                dropped += 1
                continue
            ents.append(span)
        ref.ents = ents
        data.append(Example(nlp.make_doc(text), ref))
    optimizer = nlp.initialize(lambda: data)
    rng = random.Random(seed)
    losses: dict[str, float] = {}
    done = 0
    for _ in range(epochs):
        rng.shuffle(data)
        losses = {}
        for batch in minibatch(data, size=16):  # type: ignore[no-untyped-call]
            nlp.update(batch, drop=0.2, sgd=optimizer, losses=losses)
        done += 1
        if budget_s is not None and time.perf_counter() - t0 > budget_s:
            break
    raw = nlp.to_bytes()
    payload = {
        "format": FORMAT,
        "spacy": spacy_version,
        "config": nlp.config.to_str(),
        "bytes": base64.b64encode(raw).decode("ascii"),
    }
    metrics = {
        "epochs": done,
        "loss": round(float(losses.get("ner", 0.0)), 3),
        "dropped_spans": dropped,
        "model_bytes": len(raw),
        "fit_s": round(time.perf_counter() - t0, 3),
    }
    return payload, metrics


class SpanModel:
    """A trained recogniser loaded from its payload; `predict` is thread-safe (one lock)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        from spacy.lang.en import English
        from thinc.api import Config

        if payload.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} payload: {payload.get('format')!r}")
        self.nlp = English.from_config(Config().from_str(payload["config"]))
        self.nlp.from_bytes(base64.b64decode(payload["bytes"]))
        self.labels: tuple[str, ...] = tuple(self.nlp.get_pipe("ner").labels)  # type: ignore[attr-defined]
        self._lock = threading.Lock()

    def predict(self, texts: Sequence[str]) -> list[list[EntitySpan]]:
        """Per text, its spans (score None: the greedy parser gives none)."""
        with self._lock:
            docs = list(self.nlp.pipe(texts, batch_size=max(1, len(texts))))
        return [
            [EntitySpan(e.start_char, e.end_char, e.label_, None) for e in d.ents] for d in docs
        ]


def main() -> None:
    """The training process: JSON job on stdin, JSON result on stdout, exit 0; any failure
    exits non-zero with the error on stderr."""
    job = json.loads(sys.stdin.buffer.read())
    examples = [
        (str(t), [(int(s), int(e), str(lab)) for s, e, lab in sp]) for t, sp in job["examples"]
    ]
    payload, metrics = train(
        examples,
        [str(x) for x in job["labels"]],
        int(job.get("epochs", 20)),
        int(job.get("seed", 0)),
        job.get("budget_s"),
    )
    sys.stdout.write(json.dumps({"model": payload, "metrics": metrics}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
