"""The few-shot classifier: logistic regression on sentence embeddings, fitted by scikit-learn,
kept and applied as plain arrays (no pickle: what is stored is JSON numbers).

Label anchors: the embedding of each label's name can join the training set as one more example
of that label (`anchored`). With few examples this is most of what the model knows about a label
(on the WordNet benchmark, 64 examples over 25 labels: macro-F1 0.23 without, 0.36 with), and a
label of a declared label set that has no example yet can still be predicted.

Shapes: `X` is [N, D] float32 unit vectors (D = 384 for MiniLM). A fitted `LinearModel` holds
`coef` [K, D] and `intercept` [K] for its K `labels`:

- single-label: softmax over the K rows gives P(label | text), rows sum to 1 (a binary sklearn
  model's one row w becomes the rows [0, w], the same probabilities);
- multi-label (one-vs-rest): a sigmoid per row gives P(label applies), independent per label.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]

# Inverse regularisation by training-set size, from the WordNet benchmark's C sweep
# (scripts/bench_classify.py): with few examples C=1 won (macro-F1 0.36 vs 0.34 at 64 examples
# plus label anchors), with thousands C=10 did (0.603 vs 0.587 at 4000); 100 was never better.
SMALL_C, LARGE_C, LARGE_FROM = 1.0, 10.0, 1000
MAX_ITER = 300
CV_BIG = 2000  # examples past which cross-validation uses 3 folds, not 5
CONSTANT_LOGIT = 8.0  # a label every (or no) example has: P = sigmoid(+-8), 0.9997 / 0.0003


class NotTrainable(ValueError):
    """The examples cannot make a classifier yet (fewer than two labels, say)."""


@dataclass(frozen=True)
class LinearModel:
    labels: tuple[str, ...]
    multi_label: bool
    coef: Matrix  # [K, D]
    intercept: Matrix  # [K]

    def predict_proba(self, x: Matrix) -> Matrix:
        """[N, D] embeddings -> [N, K] probabilities in `labels` order."""
        logits = x @ self.coef.T + self.intercept
        if self.multi_label:
            probs: Matrix = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
            return probs
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return probs

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "multi_label": self.multi_label,
            "coef": [[round(float(v), 7) for v in row] for row in self.coef],
            "intercept": [round(float(v), 7) for v in self.intercept],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinearModel:
        coef = np.asarray(data["coef"], np.float32)
        intercept = np.asarray(data["intercept"], np.float32)
        labels = tuple(str(x) for x in data["labels"])
        if coef.ndim != 2 or coef.shape[0] != len(labels) or intercept.shape != (len(labels),):
            raise ValueError("stored model arrays do not match its labels")
        return cls(labels, bool(data["multi_label"]), coef, intercept)


def choose_c(n: int) -> float:
    """The inverse regularisation strength for `n` training rows."""
    return LARGE_C if n >= LARGE_FROM else SMALL_C


def anchored(
    x: Matrix,
    targets: Sequence[Sequence[str]],
    anchors: Matrix | None,
    anchor_labels: Sequence[str],
) -> tuple[Matrix, list[Sequence[str]]]:
    """`x` [N, D] plus the label-name vectors `anchors` [A, D], one example of each label."""
    if anchors is None or not len(anchor_labels):
        return x, list(targets)
    return np.vstack([x, anchors]).astype(np.float32), [*targets, *((a,) for a in anchor_labels)]


def fit(
    x: Matrix, targets: Sequence[Sequence[str]], multi_label: bool, c: float | None = None
) -> LinearModel:
    """Fit on `x` [N, D] and each row's labels (exactly one per row when single-label); `c`
    defaults to `choose_c(N)`."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    c = choose_c(len(targets)) if c is None else c
    if multi_label:
        return _fit_multi(x, targets, c)
    y = [t[0] for t in targets]
    labels = tuple(sorted(set(y)))
    if len(labels) < 2:
        raise NotTrainable(f"single-label training needs two labels; the examples have {labels}")
    lr = LogisticRegression(C=c, max_iter=MAX_ITER, class_weight="balanced")
    with warnings.catch_warnings():  # an unconverged fit after MAX_ITER is still a usable model
        warnings.simplefilter("ignore", ConvergenceWarning)
        # "The number of unique classes is greater than 50%...": expected with few examples.
        warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
        lr.fit(x, y)
    coef = np.asarray(lr.coef_, np.float32)
    intercept = np.asarray(lr.intercept_, np.float32)
    if len(labels) == 2:  # sklearn's one row w scores labels[1]: softmax([0, z]) == sigmoid(z)
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([np.zeros(1, np.float32), intercept])
    assert tuple(lr.classes_) == labels
    return LinearModel(labels, False, coef, intercept)


def _fit_multi(x: Matrix, targets: Sequence[Sequence[str]], c: float) -> LinearModel:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import MultiLabelBinarizer

    labels = tuple(sorted({label for t in targets for label in t}))
    if not labels:
        raise NotTrainable("the examples carry no labels")
    binarizer = MultiLabelBinarizer(classes=list(labels))
    y = binarizer.fit_transform(targets)
    ovr = OneVsRestClassifier(LogisticRegression(C=c, max_iter=MAX_ITER, class_weight="balanced"))
    with warnings.catch_warnings():  # "Label k is present in all training examples": handled
        warnings.filterwarnings("ignore", "Label .* is present in all", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        ovr.fit(x, y)
    coef = np.zeros((len(labels), x.shape[1]), np.float32)
    intercept = np.zeros(len(labels), np.float32)
    for k, est in enumerate(ovr.estimators_):
        if hasattr(est, "coef_"):
            coef[k] = est.coef_[0]
            intercept[k] = est.intercept_[0]
        else:  # every example has the label, or none does: sklearn keeps a constant
            intercept[k] = CONSTANT_LOGIT if y[:, k].all() else -CONSTANT_LOGIT
    return LinearModel(labels, True, coef, intercept)


@dataclass(frozen=True)
class CvScore:
    accuracy: float  # single-label: accuracy; multi-label: exact match of the label sets
    macro_f1: float
    folds: int


def cross_validate(
    x: Matrix,
    targets: Sequence[Sequence[str]],
    multi_label: bool,
    c: float | None = None,
    extra: tuple[Matrix, Sequence[Sequence[str]]] | None = None,
) -> CvScore | None:
    """k-fold scores, or None when there are too few examples.

    Single-label: stratified, over the examples whose label has at least 2 of them (a label seen
    once cannot be both trained on and tested), k = min(5, the rarest such label's count), and
    k = 3 past `CV_BIG` examples (each fold is a full fit). Needs two such labels. Multi-label:
    5 folds over every example, from 10 examples on. `extra` rows (label anchors) join every
    training fold and no test fold."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import KFold, StratifiedKFold

    rows = list(range(len(targets)))
    if multi_label:
        if len(rows) < 10:
            return None
        splits = list(KFold(n_splits=5, shuffle=True, random_state=0).split(rows))
    else:
        counts: dict[str, int] = {}
        for t in targets:
            counts[t[0]] = counts.get(t[0], 0) + 1
        rows = [i for i in rows if counts[targets[i][0]] >= 2]
        kept = {targets[i][0] for i in rows}
        if len(kept) < 2:
            return None
        k = min(5 if len(rows) <= CV_BIG else 3, min(counts[label] for label in kept))
        y = [targets[i][0] for i in rows]
        splits = [
            ([rows[i] for i in a], [rows[i] for i in b])
            for a, b in StratifiedKFold(k, shuffle=True, random_state=0).split(rows, y)
        ]
    truth: list[frozenset[str]] = []
    guess: list[frozenset[str]] = []
    for train, test in splits:
        xf, tf = x[train], [targets[i] for i in train]
        if extra is not None:
            xf, tf = np.vstack([xf, extra[0]]).astype(np.float32), [*tf, *extra[1]]
        try:
            model = fit(xf, tf, multi_label, c)
        except NotTrainable:
            return None
        for i, p in zip(test, model.predict_proba(x[test]), strict=True):
            truth.append(frozenset(targets[i]))
            guess.append(_decide(model, p))
    labels = sorted({label for t in truth for label in t})
    accuracy = sum(t == g for t, g in zip(truth, guess, strict=True)) / len(truth)
    t_bin = np.array([[label in t for label in labels] for t in truth])
    g_bin = np.array([[label in g for label in labels] for g in guess])
    f1 = float(f1_score(t_bin, g_bin, average="macro", zero_division=0))
    return CvScore(round(accuracy, 4), round(f1, 4), len(splits))


def _decide(model: LinearModel, p: Matrix) -> frozenset[str]:
    """The predicted label set: every label over 0.5 (multi-label), else the argmax."""
    if model.multi_label:
        return frozenset(label for label, v in zip(model.labels, p, strict=True) if v >= 0.5)
    return frozenset({model.labels[int(np.argmax(p))]})
