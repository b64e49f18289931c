"""Use case: tokens with parts of speech, lemmas and dependencies for texts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from app.domain.textchecks import check_text_batch
from app.errors import UnknownModel
from app.inference.batcher import Lane
from app.inference.registry import ModelRegistry
from app.inference.tokens import TokenInfo


@dataclass(frozen=True)
class Token:
    """[start, end) code-point offsets into the text as sent (`text[start:end] == text`);
    `pos` a Universal POS tag, `tag` the model's fine tag, `head` an index into the same
    text's token list (a root is its own head), `sentence` 0-based."""

    start: int
    end: int
    text: str
    pos: str
    tag: str
    lemma: str
    dep: str
    head: int
    sentence: int
    morph: str


@dataclass(frozen=True)
class TokensResult:
    model: str
    version: str
    tokens: list[list[Token]]
    timings: dict[str, float]


class TokenService:
    """Every text is one scheduler item on the model's `<name>/tokens` batcher."""

    def __init__(
        self, registry: ModelRegistry, max_texts: int, max_chars: int, timeout_s: float
    ) -> None:
        self.registry = registry
        self.max_texts = max_texts
        self.max_chars = max_chars
        self.timeout_s = timeout_s

    async def tag(
        self, texts: Sequence[str], model: str, lane: Lane = Lane.INTERACTIVE
    ) -> TokensResult:
        check_text_batch(texts, self.max_texts, self.max_chars)
        ner = self.registry.ner(model)
        batcher = ner.tagged
        if batcher is None:
            raise UnknownModel(f"model {model!r} gives no parts of speech (a spaCy model does)")
        t0 = time.perf_counter()

        async def one(text: str) -> list[TokenInfo]:
            if not text.strip():
                return []
            return await batcher.submit(text, lane, self.timeout_s)

        found = await asyncio.gather(*(one(t) for t in texts))
        tokens = [
            [
                Token(
                    k.start,
                    k.end,
                    text[k.start : k.end],
                    k.pos,
                    k.tag,
                    k.lemma,
                    k.dep,
                    k.head,
                    k.sentence,
                    k.morph,
                )
                for k in per_text
            ]
            for text, per_text in zip(texts, found, strict=True)
        ]
        ms = round((time.perf_counter() - t0) * 1000, 2)
        return TokensResult(model, ner.spec.version, tokens, {"total_ms": ms})
