"""NER adapters. Both take a batch of texts and return, per text, raw predictions whose
offsets are Python `str` indices (code points) into that text.

- `SpacyNer` runs a spaCy pipeline (`nlp.pipe`), giving entity spans directly.
- `TokenClassifier` runs a BERT-style ONNX token classifier; long texts are split into
  overlapping windows of at most `max_tokens` tokens, and each window's per-token labels come
  back with the tokenizer's character offsets (BIO decoding happens in the domain layer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class EntitySpan:
    """[start, end) code-point offsets, label, and a confidence (None when the model has none)."""

    start: int
    end: int
    label: str
    score: float | None


@dataclass(frozen=True)
class TokenWindow:
    """One window's tokens (special tokens dropped): offsets [T,2] int64 code points,
    labels [T] str (BIO tags such as "B-CITY"), scores [T] float32 softmax probabilities."""

    offsets: npt.NDArray[np.int64]
    labels: tuple[str, ...]
    scores: npt.NDArray[np.float32]


class SpacyNer:
    """A spaCy pipeline, run with only the components NER needs."""

    def __init__(self, package: str) -> None:
        import spacy  # heavy import kept out of module import

        self.nlp = spacy.load(package, enable=["tok2vec", "ner"])
        self.labels: tuple[str, ...] = tuple(self.nlp.get_pipe("ner").labels)  # type: ignore[attr-defined]

    def run_batch(self, texts: Sequence[str]) -> list[list[EntitySpan]]:
        return [
            [EntitySpan(e.start_char, e.end_char, e.label_, None) for e in doc.ents]
            for doc in self.nlp.pipe(texts, batch_size=max(1, len(texts)))
        ]


class TokenClassifier:
    """BERT-style token classifier on ONNX Runtime (inputs input_ids, attention_mask,
    token_type_ids [B,T] int64 -> logits [B,T,L]); `config.json` gives `id2label`."""

    def __init__(
        self, session: Any, tokenizer_path: Path, config_path: Path, max_tokens: int, stride: int
    ) -> None:
        from tokenizers import Tokenizer

        self.session = session
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_tokens, stride=stride)
        config = json.loads(config_path.read_text(encoding="utf-8"))
        id2label = config["id2label"]
        self.id2label = tuple(id2label[str(i)] for i in range(len(id2label)))
        self.labels = tuple(sorted({lab[2:] for lab in self.id2label if lab != "O"}))
        self._inputs = {i.name for i in session.get_inputs()}

    def windows(self, text: str) -> list[Any]:
        """The tokenizer's encodings for `text`: the first window and its overflows."""
        enc = self.tokenizer.encode(text)
        return [enc, *enc.overflowing]

    def run_batch(self, texts: Sequence[str]) -> list[list[TokenWindow]]:
        per_text = [self.windows(t) for t in texts]
        flat = [w for ws in per_text for w in ws]
        length = max(len(w.ids) for w in flat)
        ids = np.zeros((len(flat), length), np.int64)
        mask = np.zeros_like(ids)
        for row, w in enumerate(flat):
            ids[row, : len(w.ids)] = w.ids
            mask[row, : len(w.ids)] = w.attention_mask
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        logits = self.session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        out: list[list[TokenWindow]] = []
        row = 0
        for ws in per_text:
            text_windows = []
            for w in ws:
                keep = [i for i, s in enumerate(w.special_tokens_mask) if not s]
                best = probs[row, keep].argmax(axis=-1)
                text_windows.append(
                    TokenWindow(
                        np.asarray([w.offsets[i] for i in keep], np.int64).reshape(-1, 2),
                        tuple(self.id2label[b] for b in best),
                        probs[row, keep, best].astype(np.float32),
                    )
                )
                row += 1
            out.append(text_windows)
        return out
