"""Sentence embeddings from a BERT-style ONNX encoder (all-MiniLM-L6-v2 in the manifest).

Inputs `input_ids`, `attention_mask`, `token_type_ids` [B,T] int64 -> `last_hidden_state`
[B,T,D] float32. A text's embedding is the mean of its token vectors over the attention mask
(special tokens included, as sentence-transformers pools), L2-normalised: a [D] float32 vector
of norm 1, so the dot product of two embeddings is their cosine similarity. Texts longer than
`max_tokens` tokens are cut (the model's training length is 256).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
"""One embedding: [D] float32, L2 norm 1 (all zeros only for a text with no tokens)."""


class SentenceEmbedder:
    """Tokenise, run the encoder, mean-pool, normalise. `run_batch` is the batcher's callable:
    list of texts in, same-length list of [D] vectors out."""

    def __init__(self, session: Any, tokenizer_path: Path, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        self.session = session
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The shipped tokenizer.json pads every text to 128 tokens: 5-10x the work for short
        # texts. Pad per batch instead, to its longest text.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self._inputs = {i.name for i in session.get_inputs()}
        shape = session.get_outputs()[0].shape
        self.dim = int(shape[-1]) if isinstance(shape[-1], int) else 0

    def run_batch(self, texts: Sequence[str]) -> list[Vector]:
        encodings = self.tokenizer.encode_batch(list(texts))
        length = max(1, max(len(e.ids) for e in encodings))
        ids = np.zeros((len(texts), length), np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = e.attention_mask
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return list(unit)
