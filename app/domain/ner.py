"""Use case: entity spans for texts (`NerService`, over the NER models of app/inference/ner.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from app.domain.spans import bio_spans, merge_windows
from app.domain.textchecks import check_text_batch
from app.inference.batcher import Lane
from app.inference.ner import EntitySpan
from app.inference.registry import LoadedNer, ModelRegistry


@dataclass(frozen=True)
class Span:
    """[start, end) offsets in code points (Python `str` indices) into the original text."""

    start: int
    end: int
    label: str
    text: str
    score: float | None


@dataclass(frozen=True)
class NerResult:
    model: str
    version: str
    spans: list[list[Span]]
    timings: dict[str, float]


class NerService:
    """Every text is one scheduler item, so the texts of one request and of concurrent
    requests batch together."""

    def __init__(
        self, registry: ModelRegistry, max_texts: int, max_chars: int, timeout_s: float
    ) -> None:
        self.registry = registry
        self.max_texts = max_texts
        self.max_chars = max_chars
        self.timeout_s = timeout_s

    async def recognise(
        self,
        texts: Sequence[str],
        model: str,
        min_score: float = 0.5,
        lane: Lane = Lane.INTERACTIVE,
    ) -> NerResult:
        check_text_batch(texts, self.max_texts, self.max_chars)
        ner = self.registry.ner(model)
        t0 = time.perf_counter()
        found = await asyncio.gather(*(self._one(ner, t, min_score, lane) for t in texts))
        spans = [
            [Span(s.start, s.end, s.label, text[s.start : s.end], s.score) for s in per_text]
            for text, per_text in zip(texts, found, strict=True)
        ]
        ms = round((time.perf_counter() - t0) * 1000, 2)
        return NerResult(model, ner.spec.version, spans, {"total_ms": ms})

    async def _one(
        self, ner: LoadedNer, text: str, min_score: float, lane: Lane
    ) -> list[EntitySpan]:
        if not text.strip():
            return []
        if ner.spans is not None:
            return await ner.spans.submit(text, lane, self.timeout_s)
        assert ner.tokens is not None
        windows = await ner.tokens.submit(text, lane, self.timeout_s)
        return merge_windows([s for w in windows for s in bio_spans(text, w, min_score)])
