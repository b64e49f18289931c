"""Zero-shot classification: a text's similarity to each label's description, before any example
exists.

Each label becomes a prototype: the L2-normalised mean of the embeddings of its name (made
readable: `refund_request` -> "refund request"), its optional description and its optional
example texts. Per text and label the result carries

- `similarity`: the cosine between the text and the prototype, in [-1, 1] (MiniLM: a paraphrase
  ~0.5-0.7, the same topic ~0.3, unrelated ~0.0-0.1). Comparable across requests and label
  sets, so it is what to threshold for multi-label decisions;
- `score`: softmax(similarity / T) over the request's labels with T = `TEMPERATURE`, summing to 1
  per text: a relative score that depends on which other labels were offered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]

TEMPERATURE = 0.05  # a cosine gap of 0.1 between two labels is a 7.4:1 score ratio


@dataclass(frozen=True)
class LabelSpec:
    """A label as the user names it, with optional words that say what it means."""

    name: str
    description: str | None = None
    examples: tuple[str, ...] = ()

    def phrases(self) -> list[str]:
        """The texts whose embeddings make this label's prototype."""
        out = [readable(self.name)]
        if self.description:
            out.append(self.description)
        out.extend(self.examples)
        return out


def readable(name: str) -> str:
    """A label name as words: `refund_request` / `RefundRequest` / `noun.animal` ->
    "refund request" / "Refund Request" / "noun animal"."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    words = re.sub(r"[_\-./:]+", " ", spaced).split()
    return " ".join(words) or name


def prototypes(labels: Sequence[LabelSpec], vectors: Sequence[Matrix]) -> Matrix:
    """[K, D] unit prototypes from each label's phrase embeddings (`vectors` holds one [D]
    vector per phrase, in the order of `labels` and their `phrases()`)."""
    out = []
    i = 0
    for label in labels:
        n = len(label.phrases())
        mean = np.mean(np.stack(vectors[i : i + n]), axis=0)
        out.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        i += n
    if i != len(vectors):
        raise ValueError(f"{len(vectors)} phrase vectors for {i} phrases")
    return np.stack(out).astype(np.float32)


def similarities(texts: Matrix, protos: Matrix) -> Matrix:
    """[N, D] text embeddings x [K, D] prototypes -> [N, K] cosines."""
    return (texts @ protos.T).astype(np.float32)


def scores(sims: Matrix, temperature: float = TEMPERATURE) -> Matrix:
    """[N, K] cosines -> [N, K] softmax scores, rows summing to 1."""
    z = sims / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: Matrix = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out
