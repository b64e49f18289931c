"""BIO tags -> character spans, window merging, and windowing end to end on the real PII model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from app.config import PROJECT_MODEL_DIR
from app.domain.spans import bio_spans, merge_windows
from app.inference.ner import EntitySpan, TokenClassifier, TokenWindow
from app.inference.session import SessionOptions, create_session


def window(text: str, tokens: Sequence[tuple[str, str, float]]) -> TokenWindow:
    """[(piece, BIO tag, score), ...] -> a TokenWindow whose offsets locate each piece in
    `text`, searching left to right (code points, end exclusive)."""
    offsets, pos = [], 0
    for piece, _, _ in tokens:
        start = text.index(piece, pos)
        pos = start + len(piece)
        offsets.append((start, pos))
    return TokenWindow(
        np.asarray(offsets, np.int64).reshape(-1, 2),
        tuple(t[1] for t in tokens),
        np.asarray([t[2] for t in tokens], np.float32),
    )


def spans_of(
    text: str, tokens: Sequence[tuple[str, str, float]], min_score: float = 0.5
) -> list[tuple[str, str, float | None]]:
    """(covered text, label, score) of each span, for readable assertions."""
    return [
        (text[s.start : s.end], s.label, s.score)
        for s in bio_spans(text, window(text, tokens), min_score)
    ]


def test_word_pieces_tagged_b_b_without_gap_merge() -> None:
    text = "mail bob@example.org now"
    toks = [
        ("mail", "O", 0.9),
        ("bob", "B-EMAIL", 0.9),
        ("@", "B-EMAIL", 0.8),
        ("example", "B-EMAIL", 0.9),
        (".", "B-EMAIL", 0.9),
        ("org", "B-EMAIL", 0.9),
        ("now", "O", 0.9),
    ]
    assert spans_of(text, toks) == [("bob@example.org", "EMAIL", 0.88)]


def test_i_tag_across_whitespace_continues_the_span() -> None:
    text = "I am Anna Maria Smith."
    toks = [
        ("Anna", "B-NAME", 0.9),
        ("Maria", "I-NAME", 0.7),
        ("Smith", "I-NAME", 0.8),
        (".", "O", 0.99),
    ]
    assert spans_of(text, toks) == [("Anna Maria Smith", "NAME", 0.8)]


def test_b_tag_across_whitespace_starts_a_new_span() -> None:
    text = "Paris London"
    toks = [("Paris", "B-CITY", 0.9), ("London", "B-CITY", 0.9)]
    assert spans_of(text, toks) == [("Paris", "CITY", 0.9), ("London", "CITY", 0.9)]


def test_i_tag_across_punctuation_starts_a_new_span() -> None:
    text = "Paris,London"
    toks = [("Paris", "B-CITY", 0.9), (",", "O", 0.9), ("London", "I-CITY", 0.9)]
    assert spans_of(text, toks) == [("Paris", "CITY", 0.9), ("London", "CITY", 0.9)]


def test_other_type_without_gap_starts_a_new_span() -> None:
    text = "AnnaSmith"
    toks = [("Anna", "B-GIVEN_NAME", 0.9), ("Smith", "I-SURNAME", 0.9)]
    assert spans_of(text, toks) == [("Anna", "GIVEN_NAME", 0.9), ("Smith", "SURNAME", 0.9)]


def test_low_score_token_breaks_the_span() -> None:
    text = "Anna Maria Smith"
    toks = [("Anna", "B-NAME", 0.9), ("Maria", "I-NAME", 0.3), ("Smith", "I-NAME", 0.8)]
    assert spans_of(text, toks) == [("Anna", "NAME", 0.9), ("Smith", "NAME", 0.8)]
    assert spans_of(text, toks, min_score=0.2) == [("Anna Maria Smith", "NAME", 0.6667)]


def test_o_token_breaks_the_span() -> None:
    text = "Anna and Smith"
    toks = [("Anna", "B-NAME", 0.9), ("and", "O", 0.9), ("Smith", "I-NAME", 0.7)]
    assert spans_of(text, toks) == [("Anna", "NAME", 0.9), ("Smith", "NAME", 0.7)]


def test_score_is_the_mean_of_token_scores() -> None:
    text = "jane.doe"
    toks = [("jane", "B-EMAIL", 1.0), (".", "I-EMAIL", 0.5), ("doe", "I-EMAIL", 0.6)]
    assert spans_of(text, toks) == [("jane.doe", "EMAIL", 0.7)]


def test_all_o_gives_no_spans() -> None:
    text = "nothing here"
    assert spans_of(text, [("nothing", "O", 0.9), ("here", "O", 0.9)]) == []


def test_unicode_offsets_are_code_points() -> None:
    # Emoji (one code point, four UTF-8 bytes) and accents before and inside the entities.
    text = "😀 Grüße an José Müller in Köln 🎉!"
    toks = [
        ("😀", "O", 0.9),
        ("Grüße", "O", 0.9),
        ("an", "O", 0.9),
        ("José", "B-NAME", 0.9),
        ("Müller", "I-NAME", 0.9),
        ("in", "O", 0.9),
        ("Köln", "B-CITY", 0.8),
        ("🎉", "O", 0.9),
    ]
    got = bio_spans(text, window(text, toks), 0.5)
    assert got == [EntitySpan(11, 22, "NAME", 0.9), EntitySpan(26, 30, "CITY", 0.8)]
    assert [text[s.start : s.end] for s in got] == ["José Müller", "Köln"]


def test_overlapping_same_label_spans_from_two_windows_union() -> None:
    merged = merge_windows(
        [
            EntitySpan(10, 18, "EMAIL", 0.9),  # window 1 saw the start of it
            EntitySpan(40, 45, "CITY", 0.7),
            EntitySpan(10, 30, "EMAIL", 0.95),  # window 2 saw all of it
            EntitySpan(15, 30, "EMAIL", 0.6),
        ]
    )
    assert merged == [EntitySpan(10, 30, "EMAIL", 0.95), EntitySpan(40, 45, "CITY", 0.7)]


def test_exact_duplicates_from_two_windows_become_one() -> None:
    span = EntitySpan(3, 9, "CITY", 0.8)
    assert merge_windows([span, span]) == [span]


def test_different_labels_and_touching_spans_are_not_merged() -> None:
    spans = [
        EntitySpan(20, 25, "SURNAME", 0.9),
        EntitySpan(0, 10, "CITY", 0.8),
        EntitySpan(5, 12, "STATE", 0.7),  # overlaps CITY, other label
        EntitySpan(10, 14, "CITY", 0.6),  # touches the first CITY, no overlap
    ]
    assert merge_windows(spans) == [
        EntitySpan(0, 10, "CITY", 0.8),
        EntitySpan(5, 12, "STATE", 0.7),
        EntitySpan(10, 14, "CITY", 0.6),
        EntitySpan(20, 25, "SURNAME", 0.9),
    ]


# --- windowing end to end on the real model -------------------------------------------------

PII = PROJECT_MODEL_DIR / "pii"
FILLER = "We met again. "
STRADDLING = "maria.garcia@outlook.com"
NEAR_END = "john.smith@gmail.com"


@pytest.fixture(scope="module")
def pii() -> Iterator[TokenClassifier]:
    files = [PII / "model_q4.onnx", PII / "tokenizer.json", PII / "config.json"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        pytest.skip(f"models/pii lacks {missing}; run `prelabel models fetch pii`")
    session = create_session(files[0], SessionOptions("cpu", 1))
    yield TokenClassifier(session, files[1], files[2], max_tokens=512, stride=64)


def long_text(pii: TokenClassifier) -> tuple[str, int]:
    """~1,200 tokens of filler (3 windows of 512) with one address near the end and one
    placed so that the first window's last token falls inside it. Returns (text, windows)."""
    prefix = "Grüße aus Köln 😀! "  # non-ASCII first: byte offsets would be off from here on
    for k in range(60, 250):
        parts = [FILLER] * 300
        parts[k] = f"Write to {STRADDLING} soon. "
        parts[295] = f"Send it to {NEAR_END} today. "
        text = prefix + "".join(parts)
        windows = pii.windows(text)
        cut = int(windows[0].offsets[-2][1])  # end of window 0's last real token
        at = text.index(STRADDLING)
        if at < cut < at + len(STRADDLING):
            return text, len(windows)
    raise AssertionError("no placement puts the address across the first window boundary")


def test_long_text_finds_emails_across_window_boundaries(pii: TokenClassifier) -> None:
    text, n_windows = long_text(pii)
    assert n_windows >= 3
    windows = pii.run_batch([text])[0]
    assert len(windows) == n_windows
    per_window = [bio_spans(text, w, 0.5) for w in windows]
    emails = [s for s in merge_windows([s for ws in per_window for s in ws]) if s.label == "EMAIL"]
    a, b = text.index(STRADDLING), text.index(NEAR_END)
    assert [(s.start, s.end) for s in emails] == [
        (a, a + len(STRADDLING)),
        (b, b + len(NEAR_END)),
    ]
    assert [text[s.start : s.end] for s in emails] == [STRADDLING, NEAR_END]
    # The first window alone cannot see the whole straddling address.
    assert all(s.end < a + len(STRADDLING) for s in per_window[0] if s.start >= a)


def test_tokenizer_offsets_are_code_points(pii: TokenClassifier) -> None:
    text = "😀😀 Grüße! Send it to john.smith@gmail.com today."
    (w,) = pii.run_batch([text])[0]
    spans = [s for s in bio_spans(text, w, 0.5) if s.label == "EMAIL"]
    assert [text[s.start : s.end] for s in spans] == [NEAR_END]
