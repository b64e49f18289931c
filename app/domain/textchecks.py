"""Checks on texts clients send, shared by NER, parts of speech and classification: every
refusal is a 422 that names the item, raised before anything is queued."""

from __future__ import annotations

from collections.abc import Sequence

from app.errors import ValidationFailed


def is_unicode(text: str) -> bool:
    """False for a str with lone surrogates (U+D800..U+DFFF), which spaCy and the tokenizer
    refuse with an exception (they encode to UTF-8), as would any JSON response carrying them."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text_batch(texts: Sequence[str], max_texts: int, max_chars: int) -> None:
    """One request's texts: at least one, at most `max_texts`, each at most `max_chars` code
    points and valid Unicode (empty texts are allowed: they get no result)."""
    if not texts:
        raise ValidationFailed("texts is empty")
    if len(texts) > max_texts:
        raise ValidationFailed(f"{len(texts)} texts; at most {max_texts} per request")
    for i, t in enumerate(texts):
        if len(t) > max_chars:
            raise ValidationFailed(f"texts[{i}] has {len(t)} characters; max {max_chars}")
        if not is_unicode(t):
            raise ValidationFailed(f"texts[{i}] holds a lone surrogate (not valid Unicode)")
