"""Parts of speech, lemmas and dependencies from a spaCy pipeline (tagger, attribute ruler,
lemmatizer, parser; NER left out). Offsets are Python `str` indices (code points)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Universal Dependencies part-of-speech tags (`pos`); `tag` carries the model's own tag set.
UPOS = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM",
    "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
)  # fmt: skip


@dataclass(frozen=True)
class TokenInfo:
    """One non-whitespace token. `head` indexes the text's token list (a root is its own
    head, as in spaCy); `sentence` is the 0-based sentence number within the text; `morph` is
    the Universal Dependencies feature string (`Number=Plur|...`, "" when none)."""

    start: int
    end: int
    pos: str
    tag: str
    lemma: str
    dep: str
    head: int
    sentence: int
    morph: str


class SpacyTagger:
    """A spaCy pipeline run without its NER component (its own copy, so NER calls and token
    calls never share `nlp` state)."""

    def __init__(self, package: str) -> None:
        import spacy  # heavy import kept out of module import

        self.nlp = spacy.load(package, exclude=["ner"])
        self.labels = UPOS

    def run_batch(self, texts: Sequence[str]) -> list[list[TokenInfo]]:
        return [_tokens(doc) for doc in self.nlp.pipe(texts, batch_size=max(1, len(texts)))]


def _tokens(doc: object) -> list[TokenInfo]:
    """Drop whitespace tokens and renumber heads; a head that was whitespace is followed up
    the tree to the first non-whitespace ancestor (or the token itself at a root)."""
    toks = list(doc)  # type: ignore[call-overload]
    keep = [t for t in toks if not t.is_space]
    new_index = {t.i: n for n, t in enumerate(keep)}
    sent_of: dict[int, int] = {}
    s_no = 0
    for sent in doc.sents:  # type: ignore[attr-defined]
        words = [t for t in sent if not t.is_space]
        for t in words:
            sent_of[t.i] = s_no
        s_no += bool(words)
    out = []
    for t in keep:
        h = t.head
        while h.is_space and h.head.i != h.i:
            h = h.head
        head = new_index.get(h.i, new_index[t.i])
        out.append(
            TokenInfo(
                t.idx,
                t.idx + len(t.text),
                t.pos_,
                t.tag_,
                t.lemma_,
                t.dep_,
                head,
                sent_of[t.i],
                str(t.morph),
            )
        )
    return out
