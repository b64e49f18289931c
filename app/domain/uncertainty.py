"""How unsure a suggestion is: one number in [0, 1], higher = less sure, kept apart from `score`.

On a probability vector p over K classes (p_1 >= p_2 >= ... sorted, K >= 2):

- `least_confidence`: (1 - p_1) * K / (K - 1)  (0 when one class has it all, 1 when uniform);
- `margin`: 1 - (p_1 - p_2);
- `entropy`: -sum p_k ln p_k / ln K  (Shannon entropy over its maximum).

Vectors that do not sum to 1 (multi-label sigmoids) are renormalised first for
`least_confidence`, `margin` and `entropy`, so the value measures how spread the scores are.

Per kind (what the service puts in `uncertainty`):

- classifier: the request's `uncertainty` strategy (default `margin`) over the project
  classifier's probabilities (few-shot) or the zero-shot softmax scores over the labels offered;
- detection box: `1 - score`. The adapters keep only each anchor's best class score (NanoDet's
  and YOLO's per-class sigmoids are not exposed past post-processing), so this is least
  confidence on the box's own score; detection image: `1 - max(score)` over its boxes, 1.0 with
  none (an image where nothing is confidently found is uncertain, not certain);
- NER span: `1 - score` where the model gives one (the PII token classifier: its span score is
  the mean softmax probability of the span's tokens); null for spaCy, whose NER has no
  probabilities; a text: the largest span uncertainty, null when no span has one;
- SAM mask: `1 - predicted_iou` (SAM's own IoU estimate, clipped to [0, 1]).

Difficulty buckets cut the same value: easy < `EASY_BELOW` <= medium < `HARD_FROM` <= hard.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

Strategy = Literal["least_confidence", "margin", "entropy"]
STRATEGIES: tuple[Strategy, ...] = ("least_confidence", "margin", "entropy")
DEFAULT_STRATEGY: Strategy = "margin"
Bucket = Literal["easy", "medium", "hard"]
EASY_BELOW = 0.25
HARD_FROM = 0.6
_EPS = 1e-12


def _normalised(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """[N, K] rows as probabilities (clipped at 0, summing to 1; an all-zero row is uniform)."""
    q = np.clip(np.atleast_2d(np.asarray(p, np.float64)), 0.0, None)
    if q.shape[1] < 1:
        raise ValueError("probability vectors need at least one class")
    s = q.sum(axis=1, keepdims=True)
    uniform = np.full_like(q, 1.0 / q.shape[1])
    out: npt.NDArray[np.float64] = np.where(s > _EPS, q / np.maximum(s, _EPS), uniform)
    return out


def least_confidence(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """[N, K] -> [N]: (1 - max p) * K / (K - 1); a single class is certain (0)."""
    q = _normalised(p)
    k = q.shape[1]
    if k == 1:
        return np.zeros(q.shape[0])
    out: npt.NDArray[np.float64] = np.clip((1.0 - q.max(axis=1)) * k / (k - 1), 0.0, 1.0)
    return out


def margin(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """[N, K] -> [N]: 1 - (p_1 - p_2), the two largest; a single class is certain (0)."""
    q = _normalised(p)
    if q.shape[1] == 1:
        return np.zeros(q.shape[0])
    top2 = -np.sort(-q, axis=1)[:, :2]
    return np.clip(1.0 - (top2[:, 0] - top2[:, 1]), 0.0, 1.0)


def entropy(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """[N, K] -> [N]: Shannon entropy / ln K (0 * ln 0 = 0)."""
    q = _normalised(p)
    k = q.shape[1]
    if k == 1:
        return np.zeros(q.shape[0])
    logs = np.log(np.where(q > 0, q, 1.0))
    out: npt.NDArray[np.float64] = np.clip(-(q * logs).sum(axis=1) / math.log(k), 0.0, 1.0)
    return out


FORMULAS = {"least_confidence": least_confidence, "margin": margin, "entropy": entropy}


def of_probs(p: npt.ArrayLike, strategy: Strategy = DEFAULT_STRATEGY) -> npt.NDArray[np.float64]:
    """[N, K] probabilities -> [N] uncertainties by `strategy`."""
    if strategy not in FORMULAS:
        raise ValueError(f"unknown uncertainty strategy {strategy!r}; one of {STRATEGIES}")
    return FORMULAS[strategy](p)


def of_score(score: float | None) -> float | None:
    """A single confidence in [0, 1] (a box, a span, a mask's IoU) -> 1 - score; None stays."""
    if score is None:
        return None
    return _r(1.0 - min(1.0, max(0.0, float(score))))


def of_image(scores: Sequence[float]) -> float:
    """Boxes' scores -> the image's uncertainty: 1 - the best score; 1.0 with no box."""
    if not scores:
        return 1.0
    return _r(1.0 - min(1.0, max(0.0, max(float(s) for s in scores))))


def of_text(span_uncertainties: Sequence[float | None]) -> float | None:
    """A text's spans -> the largest uncertainty among those that have one (None if none)."""
    known = [u for u in span_uncertainties if u is not None]
    return max(known) if known else None


def bucket(u: float | None) -> Bucket | None:
    """easy (u < EASY_BELOW), medium, hard (u >= HARD_FROM); None stays None."""
    if u is None:
        return None
    if u < EASY_BELOW:
        return "easy"
    return "hard" if u >= HARD_FROM else "medium"


def _r(x: float) -> float:
    return round(x, 4)
