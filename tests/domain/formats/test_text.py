"""spaCy-style JSONL and CoNLL BIO: known outputs, and round trips of real spaCy predictions."""

from __future__ import annotations

import json
import re

import pytest

from app.domain.formats.records import SpanRecord, TextRecord
from app.domain.formats.text import (
    bio_tags,
    from_conll,
    from_spacy_jsonl,
    to_conll,
    to_spacy_jsonl,
)
from tests.domain.formats.test_labelstudio import real_texts

KNOWN = TextRecord(
    "Apple opened an office in Paris, said Tim Cook.",
    (SpanRecord(0, 5, "ORG"), SpanRecord(26, 31, "GPE"), SpanRecord(38, 46, "PERSON")),
)


def test_jsonl_is_one_object_per_line() -> None:
    rec = TextRecord("Zoë 🙂 Müller", (SpanRecord(6, 12, "PERSON", 0.8),), "t1", {"src": "x"})
    out = to_spacy_jsonl([KNOWN, rec])
    lines = out.splitlines()
    assert len(lines) == 2 and out.endswith("\n")
    assert json.loads(lines[0]) == {
        "text": KNOWN.text,
        "spans": [
            {"start": 0, "end": 5, "label": "ORG"},
            {"start": 26, "end": 31, "label": "GPE"},
            {"start": 38, "end": 46, "label": "PERSON"},
        ],
    }
    second = json.loads(lines[1])
    assert second["text"][6:12] == "Müller"  # code-point offsets survive JSON
    assert second["spans"] == [{"start": 6, "end": 12, "label": "PERSON", "score": 0.8}]
    assert second["meta"] == {"src": "x", "text_id": "t1"}
    assert from_spacy_jsonl(out) == [KNOWN, rec]


def test_jsonl_rejects_bad_lines() -> None:
    with pytest.raises(ValueError, match="line 2"):
        from_spacy_jsonl('{"text": "a"}\n["not", "an", "object"]\n')
    with pytest.raises(ValueError, match="outside"):
        from_spacy_jsonl('{"text": "abc", "spans": [{"start": 1, "end": 9, "label": "X"}]}')


def test_conll_known_output() -> None:
    assert to_conll([KNOWN]) == (
        "Apple\tB-ORG\nopened\tO\nan\tO\noffice\tO\nin\tO\nParis\tB-GPE\n,\tO\nsaid\tO\n"
        "Tim\tB-PERSON\nCook\tI-PERSON\n.\tO\n\n"
    )


def test_adjacent_spans_of_one_label_start_with_b() -> None:
    rec = TextRecord("New York Boston", (SpanRecord(0, 8, "GPE"), SpanRecord(9, 15, "GPE")))
    assert [t for _, t in bio_tags(rec.text, rec.spans)] == ["B-GPE", "I-GPE", "B-GPE"]


def test_span_inside_a_token_tags_the_whole_token() -> None:
    rec = TextRecord("the Parisbased firm", (SpanRecord(4, 9, "GPE"),))
    assert bio_tags(rec.text, rec.spans) == [("the", "O"), ("Parisbased", "B-GPE"), ("firm", "O")]


def test_from_conll_reconstructs_text_with_single_spaces() -> None:
    [rec] = from_conll(to_conll([KNOWN]))
    assert rec.text == "Apple opened an office in Paris , said Tim Cook ."
    assert [(rec.text[s.start : s.end], s.label) for s in rec.spans] == [
        ("Apple", "ORG"),
        ("Paris", "GPE"),
        ("Tim Cook", "PERSON"),
    ]


def test_from_conll_reads_other_schemes_and_columns() -> None:
    data = (
        "-DOCSTART- -X- -X- O\n\n"
        "EU NNP B-NP I-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP I-MISC\ncall NN I-NP O\n\n"
        "Jan\tS-PER\nvan\tB-PER\nDijk\tE-PER\nhere\tO\n\n\n"
    )
    eu, jan = from_conll(data)
    assert [(eu.text[s.start : s.end], s.label) for s in eu.spans] == [
        ("EU", "ORG"),
        ("German", "MISC"),
    ]
    assert [(jan.text[s.start : s.end], s.label) for s in jan.spans] == [
        ("Jan", "PER"),
        ("van Dijk", "PER"),
    ]


def test_real_spacy_output_round_trips() -> None:
    records = real_texts()
    assert sum(len(r.spans) for r in records) >= 8
    assert from_spacy_jsonl(to_spacy_jsonl(records)) == list(records)

    back = from_conll(to_conll(records))
    assert len(back) == len(records)
    for orig, rec in zip(records, back, strict=True):
        # Offsets refer to the reconstructed text; the span texts agree up to whitespace and
        # the labels are the same, in order.
        assert rec.text.split() == [m.group() for m in re.finditer(r"\w+|[^\w\s]", orig.text)]
        assert [s.label for s in rec.spans] == [s.label for s in orig.spans]
        for a, b in zip(orig.spans, rec.spans, strict=True):
            assert "".join(orig.text[a.start : a.end].split()) == "".join(
                rec.text[b.start : b.end].split()
            )
    # A second trip through CoNLL is exact: the reconstructed text tokenises to itself.
    assert from_conll(to_conll(back)) == back
