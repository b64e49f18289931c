"""What to label next: pick `k` items of a pool by uncertainty, optionally spread out.

Inputs: `uncertainty` [N] in [0, 1] (higher = less sure; app/domain/uncertainty.py computes it
from probability vectors by least confidence, margin or entropy) and, for diversity,
`embeddings` [N, D] float32 (unit vectors for texts; distances are Euclidean, which on unit
vectors orders like cosine distance).

- `random`: a seeded shuffle (uncertainty ignored);
- the uncertainty strategies: the most uncertain first (ties: lower index first);
- `diversity="kcenter"`: from the `CANDIDATES` * k best-ranked items, k-center greedy: the first
  pick is the best-ranked item (or the one farthest from `labeled`), each next pick the
  candidate farthest from every pick so far and from `labeled` (ties: better-ranked first), so
  a near-duplicate of a pick is only chosen once nothing else is left;
- `diversity="cluster"`: k-means (k clusters, seeded) over the candidates, then each cluster's
  best-ranked item, in rank order.

Everything is deterministic given `seed`.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import numpy.typing as npt

Method = Literal["least_confidence", "margin", "entropy", "random"]
METHODS: tuple[Method, ...] = ("least_confidence", "margin", "entropy", "random")
Diversity = Literal["none", "kcenter", "cluster"]
DIVERSITY: tuple[Diversity, ...] = ("none", "kcenter", "cluster")
CANDIDATES = 4  # diversity chooses among the CANDIDATES * k best-ranked items
Floats = npt.NDArray[np.float64]


def order(uncertainty: npt.ArrayLike, method: Method, seed: int = 0) -> npt.NDArray[np.int64]:
    """[N] -> every index, best to label first: by uncertainty (descending, stable) or, for
    `random`, a permutation drawn from `seed`."""
    u = np.asarray(uncertainty, np.float64).reshape(-1)
    if method == "random":
        return np.random.default_rng(seed).permutation(u.shape[0]).astype(np.int64)
    if method not in METHODS:
        raise ValueError(f"unknown strategy {method!r}; one of {METHODS}")
    if np.isnan(u).any():
        raise ValueError("uncertainty holds NaN")
    return np.argsort(-u, kind="stable").astype(np.int64)


def pick(
    uncertainty: npt.ArrayLike,
    k: int,
    method: Method = "margin",
    diversity: Diversity = "none",
    embeddings: npt.ArrayLike | None = None,
    labeled: npt.ArrayLike | None = None,
    seed: int = 0,
) -> list[int]:
    """The indices of the `k` items to label next, in the order to label them.

    `embeddings` [N, D] is needed for diversity; `labeled` [M, D] (optional) are the items
    already labeled, which k-center keeps away from."""
    ranked = order(uncertainty, method, seed)
    k = max(0, min(int(k), ranked.shape[0]))
    if diversity == "none" or k == 0:
        return [int(i) for i in ranked[:k]]
    if diversity not in DIVERSITY:
        raise ValueError(f"unknown diversity {diversity!r}; one of {DIVERSITY}")
    if embeddings is None:
        raise ValueError("diversity needs embeddings")
    x = np.asarray(embeddings, np.float64)
    if x.ndim != 2 or x.shape[0] != ranked.shape[0]:
        raise ValueError(f"embeddings {x.shape} do not match {ranked.shape[0]} items")
    cands = ranked[: min(ranked.shape[0], CANDIDATES * k)]
    if diversity == "cluster":
        return _cluster(x[cands], cands, k, seed)
    lab = None if labeled is None else np.asarray(labeled, np.float64).reshape(-1, x.shape[1])
    return _kcenter(x[cands], cands, k, lab)


def _kcenter(xc: Floats, cands: npt.NDArray[np.int64], k: int, labeled: Floats | None) -> list[int]:
    """Greedy k-center over candidates `xc` [C, D] (in rank order)."""
    nearest = np.full(xc.shape[0], np.inf)
    if labeled is not None and labeled.shape[0]:
        for start in range(0, labeled.shape[0], 1024):  # bounded [C, 1024] blocks
            nearest = np.minimum(nearest, _dist(xc, labeled[start : start + 1024]).min(axis=1))
    chosen: list[int] = []
    taken = np.zeros(xc.shape[0], bool)
    for _ in range(k):
        gap = np.where(taken, -1.0, nearest)
        j = int(np.argmax(gap))  # first maximum: inf (nothing chosen yet) picks the best-ranked
        chosen.append(int(cands[j]))
        taken[j] = True
        nearest = np.minimum(nearest, _dist(xc, xc[j : j + 1])[:, 0])
    return chosen


def _cluster(xc: Floats, cands: npt.NDArray[np.int64], k: int, seed: int) -> list[int]:
    """k-means over candidates `xc` [C, D] (rank order), each cluster's best-ranked member."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    n_clusters = min(k, xc.shape[0])
    with warnings.catch_warnings():  # fewer distinct points than clusters: filled up below
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = KMeans(n_clusters, n_init=1, random_state=seed).fit_predict(xc)
    seen: set[int] = set()
    out: list[int] = []
    for j, c in enumerate(labels.tolist()):  # rank order: the first member is the best-ranked
        if c not in seen:
            seen.add(c)
            out.append(int(cands[j]))
    for j in range(xc.shape[0]):  # k-means can leave a cluster empty: fill up in rank order
        if len(out) >= k:
            break
        if int(cands[j]) not in out:
            out.append(int(cands[j]))
    return out[:k]


def _dist(a: Floats, b: Floats) -> Floats:
    """[A, D] x [B, D] -> [A, B] Euclidean distances."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    out: Floats = np.sqrt(np.maximum(sq, 0.0))
    return out
