"""Image embeddings for diversity, from a model already loaded: the SAM image encoder.

`pooled(embedding)`: the encoder's [1, 256, 64, 64] grid, averaged over the cells that cover
the image (the encoder input is the image scaled to 1024 on its longest side and zero-padded
bottom/right, so the padding cells are left out), then L2-normalised: a [256] float32 unit
vector. scripts/bench_active.py --images measures that it puts a photo's slightly cropped and
brightened copy nearer than any other photo (see docs/learning.md, "What to label next").
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from app.inference.sam import Embedding


def pooled(emb: Embedding) -> npt.NDArray[np.float32]:
    """[1, 256, G, G] SAM embedding -> [256] unit vector over the image's own cells."""
    grid = emb.array[0]
    g = grid.shape[-1]
    rows = max(1, min(g, math.ceil(emb.height * emb.scale / 1024 * g)))
    cols = max(1, min(g, math.ceil(emb.width * emb.scale / 1024 * g)))
    v = grid[:, :rows, :cols].mean(axis=(1, 2)).astype(np.float64)
    out: npt.NDArray[np.float32] = (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)
    return out
