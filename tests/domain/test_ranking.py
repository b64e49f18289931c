"""Ranking: order, determinism, and diversity on near-duplicates (fixed vectors)."""

from __future__ import annotations

import numpy as np
import pytest

from app.domain import ranking


def _pool() -> tuple[np.ndarray, np.ndarray]:
    """Three far-apart items, each with 4 near-duplicates; the first group is the most
    uncertain, so uncertainty alone picks its duplicates first."""
    rng = np.random.default_rng(7)
    centers = np.eye(8)[:3] * 10.0
    x = np.concatenate([c + rng.normal(0, 0.01, (5, 8)) for c in centers])
    u = np.concatenate([[0.9, 0.89, 0.88, 0.87, 0.86], [0.5] * 5, [0.3] * 5])
    return u, x


def test_uncertainty_order_and_ties() -> None:
    assert ranking.pick([0.1, 0.9, 0.5, 0.9], 3, "entropy") == [1, 3, 2]
    assert ranking.pick([0.1, 0.9], 5, "margin") == [1, 0]
    assert ranking.pick([0.1, 0.9], 0, "margin") == []


def test_random_is_seeded() -> None:
    u = np.zeros(50)
    a = ranking.pick(u, 10, "random", seed=3)
    assert a == ranking.pick(u, 10, "random", seed=3)
    assert a != ranking.pick(u, 10, "random", seed=4)
    assert len(set(a)) == 10


@pytest.mark.parametrize("diversity", ["kcenter", "cluster"])
def test_diversity_skips_near_duplicates(diversity: ranking.Diversity) -> None:
    u, x = _pool()
    plain = ranking.pick(u, 3, "least_confidence")
    assert plain == [0, 1, 2]  # three copies of one item
    picks = ranking.pick(u, 3, "least_confidence", diversity, x, seed=1)
    assert picks[0] == 0 and sorted(i // 5 for i in picks) == [0, 1, 2]
    assert picks == ranking.pick(u, 3, "least_confidence", diversity, x, seed=1)


def test_kcenter_keeps_away_from_labeled() -> None:
    u, x = _pool()
    # the first group is already labeled: the first picks come from the two others
    picks = ranking.pick(u, 3, "margin", "kcenter", x, labeled=x[:1])
    assert sorted(i // 5 for i in picks[:2]) == [1, 2]
    alone = ranking.pick(u, 3, "margin", "kcenter", x)  # nothing labeled: group 0 first
    assert alone[0] == 0 and sorted(i // 5 for i in alone) == [0, 1, 2]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="embeddings"):
        ranking.pick([0.1, 0.2], 1, "margin", "kcenter")
    with pytest.raises(ValueError, match="match"):
        ranking.pick([0.1, 0.2], 1, "margin", "kcenter", np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        ranking.pick([0.1, float("nan")], 1, "margin")
