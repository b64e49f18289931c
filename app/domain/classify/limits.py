"""Input checks shared by classification and example uploads: every refusal is a 422 that says
which item is wrong, raised before anything is embedded or stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.domain.textchecks import is_unicode
from app.errors import ValidationFailed

MAX_LABEL_CHARS = 200
MAX_LABELS_PER_EXAMPLE = 50
MAX_LABELS = 1000  # per request or per project's fixed set


@dataclass(frozen=True)
class Limits:
    max_texts: int  # texts per /v1/classify call
    max_chars: int  # characters per text
    max_examples: int  # examples per upload
    max_project_examples: int  # examples a project may hold


def check_texts(texts: Sequence[str], max_chars: int, what: str = "texts[{}]") -> None:
    """`what` names an item, `{}` standing for its index."""
    for i, t in enumerate(texts):
        if not t.strip():
            raise ValidationFailed(f"{what.format(i)} is empty")
        if len(t) > max_chars:
            raise ValidationFailed(f"{what.format(i)} has {len(t)} characters; max {max_chars}")
        if not is_unicode(t):
            raise ValidationFailed(f"{what.format(i)} holds a lone surrogate (not valid Unicode)")


def clean_labels(labels: Sequence[str], what: str) -> tuple[str, ...]:
    """Stripped, non-empty, short, distinct (order kept)."""
    out: list[str] = []
    for i, raw in enumerate(labels):
        label = raw.strip()
        if not label:
            raise ValidationFailed(f"{what}[{i}] is empty")
        if len(label) > MAX_LABEL_CHARS:
            raise ValidationFailed(f"{what}[{i}] is longer than {MAX_LABEL_CHARS} characters")
        if not is_unicode(label):
            raise ValidationFailed(f"{what}[{i}] holds a lone surrogate (not valid Unicode)")
        if label not in out:
            out.append(label)
    if len(out) > MAX_LABELS:
        raise ValidationFailed(f"{what}: {len(out)} labels; at most {MAX_LABELS}")
    return tuple(out)
