"""`run.json` in an output folder: what produced its checkpoint (task, models, class order),
so a resume, a merge or an export never mixes results of different models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RUN_JSON = "run.json"
# The fields that must match for two checkpoints to be combined.
IDENTITY = ("task", "model", "sam_model", "model_version", "classes")


def read_meta(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / RUN_JSON
    if not path.exists():
        return None
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def write_meta(out_dir: Path, meta: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (RUN_JSON + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    tmp.replace(out_dir / RUN_JSON)


def mismatch(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """A description of the first identity field that differs, else None."""
    for field in IDENTITY:
        if a.get(field) != b.get(field):
            return f"{field}: {a.get(field)!r} != {b.get(field)!r}"
    return None
