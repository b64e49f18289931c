"""Token-level BIO predictions -> character spans."""

from __future__ import annotations

from collections.abc import Sequence

from app.inference.ner import EntitySpan, TokenWindow


def bio_spans(text: str, window: TokenWindow, min_score: float) -> list[EntitySpan]:
    """Group BIO-tagged tokens into spans over `text` (code-point offsets, end exclusive).

    A token joins the open span when it has the same entity type and either touches it (a
    word piece: no gap, whatever its B/I tag, since word pieces often repeat B-) or is an I- tag
    separated only by whitespace. "O" tokens and tokens under `min_score` close the span.
    A span's score is the mean of its tokens' scores.
    """
    spans: list[EntitySpan] = []
    start = end = -1
    kind = ""
    scores: list[float] = []

    def close() -> None:
        if scores:
            spans.append(EntitySpan(start, end, kind, round(sum(scores) / len(scores), 4)))
        scores.clear()

    for (s, e), tag, score in zip(
        window.offsets.tolist(), window.labels, window.scores.tolist(), strict=True
    ):
        if tag == "O" or score < min_score or e <= s:
            close()
            continue
        prefix, _, etype = tag.partition("-")
        if not etype:
            prefix, etype = "I", tag
        gap = text[end:s]
        if scores and etype == kind and (gap == "" or (prefix == "I" and gap.isspace())):
            end = e
            scores.append(score)
            continue
        close()
        start, end, kind = s, e, etype
        scores.append(score)
    close()
    return spans


def merge_windows(spans: Sequence[EntitySpan]) -> list[EntitySpan]:
    """Union overlapping same-label spans that overlapping windows found twice; sorted."""
    merged: list[EntitySpan] = []
    for sp in sorted(spans, key=lambda s: (s.start, s.end)):
        prev = next((m for m in reversed(merged) if m.label == sp.label), None)
        if prev is not None and sp.start < prev.end:
            i = merged.index(prev)
            best = max(prev.score or 0.0, sp.score or 0.0)
            merged[i] = EntitySpan(prev.start, max(prev.end, sp.end), prev.label, best)
        else:
            merged.append(sp)
    return merged
