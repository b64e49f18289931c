"""Text annotation formats: spaCy/Prodigy-style JSONL and CoNLL BIO.

- JSONL: one object per text, `{"text": ..., "spans": [{"start", "end", "label"}, ...]}`, the
  convention of Prodigy and of spaCy's training-data scripts; offsets are [start, end) code
  points (Python str indices). A span's `score` is written when it has one, and `meta` carries
  the record's `meta` plus its `text_id`.
- CoNLL: one token per line, `token<TAB>tag` with tags `B-LABEL`, `I-LABEL` or `O`, and a blank
  line after each text. Tokens are runs of word characters or single other non-space
  characters (`TOKEN_RE`); a token that overlaps a span takes its tag (the earliest-starting
  span wins where spans overlap), so a span that starts or ends inside a token grows to the
  token's edges. Whitespace is not kept, and a text with no tokens is written as nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from app.domain.formats.records import SpanRecord, TextRecord

TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def to_spacy_jsonl(records: Iterable[TextRecord]) -> str:
    """Records -> JSONL text (one line per record, each ending in a newline)."""
    lines = []
    for rec in records:
        obj: dict[str, Any] = {"text": rec.text, "spans": [_span_json(s) for s in rec.spans]}
        meta = dict(rec.meta)
        if rec.text_id is not None:
            meta["text_id"] = rec.text_id
        if meta:
            obj["meta"] = meta
        lines.append(json.dumps(obj, ensure_ascii=False) + "\n")
    return "".join(lines)


def _span_json(s: SpanRecord) -> dict[str, Any]:
    d: dict[str, Any] = {"start": s.start, "end": s.end, "label": s.label}
    if s.score is not None:
        d["score"] = s.score
    return d


def from_spacy_jsonl(data: str) -> list[TextRecord]:
    """JSONL text -> records (blank lines skipped). Raises ValueError for a line that is not
    a JSON object with a string `text`, or for a span outside its text."""
    out = []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        obj = json.loads(line)
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise ValueError(f"line {n}: expected an object with a string 'text'")
        text: str = obj["text"]
        spans = []
        for s in obj.get("spans") or []:
            start, end = int(s["start"]), int(s["end"])
            if not 0 <= start < end <= len(text):
                raise ValueError(f"line {n}: span [{start}, {end}) outside the text")
            score = s.get("score")
            spans.append(
                SpanRecord(start, end, str(s["label"]), None if score is None else float(score))
            )
        meta = dict(obj.get("meta") or {})
        text_id = meta.pop("text_id", None)
        out.append(TextRecord(text, tuple(spans), None if text_id is None else str(text_id), meta))
    return out


def bio_tags(text: str, spans: Iterable[SpanRecord]) -> list[tuple[str, str]]:
    """(token, BIO tag) pairs for a text, tokenised with TOKEN_RE."""
    ordered = sorted(spans, key=lambda s: (s.start, -s.end))
    out = []
    prev: SpanRecord | None = None
    for m in TOKEN_RE.finditer(text):
        span = next((s for s in ordered if s.start < m.end() and m.start() < s.end), None)
        tag = "O" if span is None else ("I-" if span is prev else "B-") + span.label
        prev = span
        out.append((m.group(), tag))
    return out


def to_conll(records: Iterable[TextRecord]) -> str:
    """Records -> CoNLL BIO text (`token<TAB>tag` lines, a blank line after each text)."""
    blocks = []
    for rec in records:
        pairs = bio_tags(rec.text, rec.spans)
        if pairs:
            blocks.append("".join(f"{tok}\t{tag}\n" for tok, tag in pairs) + "\n")
    return "".join(blocks)


def from_conll(data: str) -> list[TextRecord]:
    """CoNLL text -> records. Each block's tokens are joined with single spaces, and the span
    offsets refer to that reconstructed text (the original spacing is not in the file).

    The token is the first column and the tag the last (tab- or space-separated), so
    CoNLL-2003's four-column files read too; `-DOCSTART-` lines are skipped. Tags: `B-X`
    starts a span, `I-X` continues a span of type X (or starts one, as in IOB1), `E-X` / `L-X`
    end one, `S-X` / `U-X` are single-token spans, `O` closes."""
    out = []
    for block in re.split(r"\n[ \t]*\n", data.replace("\r\n", "\n")):
        rows = [line.split() for line in block.split("\n") if line.strip()]
        rows = [r for r in rows if r[0] != "-DOCSTART-"]
        if rows:
            out.append(_record([r[0] for r in rows], [r[-1] if len(r) > 1 else "O" for r in rows]))
    return out


def _record(tokens: list[str], tags: list[str]) -> TextRecord:
    spans: list[SpanRecord] = []
    start = end = -1
    kind: str | None = None
    pos = 0

    def close() -> None:
        nonlocal kind
        if kind is not None:
            spans.append(SpanRecord(start, end, kind))
        kind = None

    for tok, tag in zip(tokens, tags, strict=True):
        t_start, t_end = pos, pos + len(tok)
        pos = t_end + 1
        prefix, _, label = tag.partition("-")
        if tag == "O" or not label:
            close()
            continue
        if prefix in ("I", "E", "L") and kind == label:
            end = t_end
        else:
            close()
            start, end, kind = t_start, t_end, label
        if prefix in ("E", "L", "S", "U"):
            close()
    close()
    return TextRecord(" ".join(tokens), tuple(spans))
