"""CoNLL-U (Universal Dependencies) for tagged and parsed texts.

One block per sentence: `# sent_id = <text_id or text number>-<sentence number>` (1-based),
`# text = <the sentence as in the text>`, then one line per token with the ten tab-separated
columns ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC, and a blank line. ID counts from 1
in each sentence; HEAD is the head's ID in the sentence, 0 for a root, whose DEPREL is `root`
(spaCy's `ROOT`); other DEPRELs are the model's labels as they are (ClearNLP-style for
English spaCy models, not UD relations). `SpaceAfter=No` marks a token directly followed by the
next token of the text. Whitespace tokens are not written; a text with no tokens is nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby
from typing import Any, Protocol


class TokenLike(Protocol):
    """What the writer reads from a token (`app.domain.tokens.Token` is one)."""

    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def pos(self) -> str: ...
    @property
    def tag(self) -> str: ...
    @property
    def lemma(self) -> str: ...
    @property
    def dep(self) -> str: ...
    @property
    def head(self) -> int: ...
    @property
    def sentence(self) -> int: ...
    @property
    def morph(self) -> str: ...


def _field(value: str) -> str:
    """A column value: '_' when empty; tabs and newlines (which would break a line) become
    spaces."""
    value = " ".join(value.split("\t")).replace("\n", " ").replace("\r", " ")
    return value or "_"


def to_conllu(
    texts: Iterable[tuple[str, Sequence[TokenLike]]], text_ids: Sequence[str] | None = None
) -> str:
    """(text, tokens) pairs -> CoNLL-U text. `tokens[i].head` indexes `tokens`."""
    blocks: list[str] = []
    for n, (text, tokens) in enumerate(texts):
        tid = text_ids[n] if text_ids is not None else str(n + 1)
        indexed = list(enumerate(tokens))
        for s_no, (_, group) in enumerate(groupby(indexed, key=lambda it: it[1].sentence), 1):
            sent = list(group)
            local = {i: k for k, (i, _) in enumerate(sent, 1)}
            first, last = sent[0][1], sent[-1][1]
            lines = [
                f"# sent_id = {tid}-{s_no}",
                f"# text = {_field(text[first.start : last.end])}",
            ]
            for k, (i, t) in enumerate(sent, 1):
                root = t.head == i or t.head not in local
                head = 0 if root else local[t.head]
                dep = "root" if root else t.dep
                nxt = tokens[i + 1].start if i + 1 < len(tokens) else None
                misc = "SpaceAfter=No" if nxt == t.end else "_"
                cols = [
                    str(k), _field(text[t.start : t.end]), _field(t.lemma), _field(t.pos),
                    _field(t.tag), _field(t.morph), str(head), _field(dep), "_", misc,
                ]  # fmt: skip
                lines.append("\t".join(cols))
            blocks.append("\n".join(lines) + "\n\n")
    return "".join(blocks)


def pos_label_results(
    text: str, tokens: Sequence[TokenLike], from_name: str, to_name: str
) -> list[dict[str, Any]]:
    """Label Studio `Labels` on `Text` (a `labels` result per token whose label is its UPOS
    tag), code-point offsets as Label Studio stores them for `<Text>`. Result ids are stable
    for (from_name, token number)."""
    import hashlib

    out: list[dict[str, Any]] = []
    for i, t in enumerate(tokens):
        if not 0 <= t.start < t.end <= len(text):
            raise ValueError(f"token [{t.start}, {t.end}) outside a text of {len(text)} characters")
        rid = hashlib.sha1(f"{from_name}/labels/{i}".encode()).hexdigest()[:10]
        out.append(
            {
                "id": rid,
                "from_name": from_name,
                "to_name": to_name,
                "type": "labels",
                "value": {
                    "start": t.start,
                    "end": t.end,
                    "text": text[t.start : t.end],
                    "labels": [t.pos],
                },
            }
        )
    return out


def pos_task(
    text: str,
    tokens: Sequence[TokenLike],
    model_version: str,
    text_id: str | None = None,
    from_name: str = "pos",
    to_name: str = "text",
) -> dict[str, Any]:
    """A Label Studio task for one text (`data.text`, and `data.id` when given) with one
    prediction of `pos_label_results`."""
    data: dict[str, Any] = {"text": text} if text_id is None else {"text": text, "id": text_id}
    result = pos_label_results(text, tokens, from_name, to_name)
    return {"data": data, "predictions": [{"model_version": model_version, "result": result}]}
