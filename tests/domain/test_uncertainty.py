"""The uncertainty formulas on fixed probability vectors, with exact values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.domain import uncertainty as u


def test_least_confidence_exact() -> None:
    p = [[1.0, 0.0, 0.0], [0.5, 0.3, 0.2], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.4, 0.0]]
    # (1 - p1) * K / (K - 1), K = 3
    assert u.least_confidence(p) == pytest.approx([0.0, 0.75, 1.0, 0.6])


def test_margin_exact() -> None:
    p = [[1.0, 0.0, 0.0], [0.5, 0.3, 0.2], [1 / 3, 1 / 3, 1 / 3], [0.2, 0.7, 0.1]]
    assert u.margin(p) == pytest.approx([0.0, 0.8, 1.0, 0.5])


def test_entropy_exact() -> None:
    p = [[1.0, 0.0], [0.5, 0.5], [0.9, 0.1]]
    h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)
    assert u.entropy(p) == pytest.approx([0.0, 1.0, h])
    four = [[0.25, 0.25, 0.5, 0.0]]  # ln K with K = 4: 1.5 bits of 2
    assert u.entropy(four) == pytest.approx([0.75])


def test_unnormalised_rows_and_single_class() -> None:
    # multi-label sigmoids (0.9, 0.9) are as spread as (0.5, 0.5)
    assert u.margin([[0.9, 0.9]]) == pytest.approx([1.0])
    assert u.entropy([[0.0, 0.0]]) == pytest.approx([1.0])  # no evidence: uniform
    for f in (u.least_confidence, u.margin, u.entropy):
        assert f([[0.7]]) == pytest.approx([0.0])


def test_order_agrees_on_clear_cases() -> None:
    p = np.array([[0.98, 0.01, 0.01], [0.6, 0.3, 0.1], [0.4, 0.35, 0.25]])
    for s in u.STRATEGIES:
        v = u.of_probs(p, s)
        assert v[0] < v[1] < v[2], s
        assert ((v >= 0) & (v <= 1)).all()
    with pytest.raises(ValueError):
        u.of_probs(p, "bald")  # type: ignore[arg-type]


def test_scores_images_texts_buckets() -> None:
    assert u.of_score(0.83) == 0.17
    assert u.of_score(None) is None
    assert u.of_score(1.2) == 0.0
    assert u.of_image([0.4, 0.9]) == pytest.approx(0.1)
    assert u.of_image([]) == 1.0  # nothing found is uncertain, not certain
    assert u.of_text([0.1, None, 0.3]) == 0.3
    assert u.of_text([None]) is None
    assert [u.bucket(x) for x in (0.0, 0.2499, 0.25, 0.5999, 0.6, 1.0, None)] == [
        "easy",
        "easy",
        "medium",
        "medium",
        "hard",
        "hard",
        None,
    ]
