"""`prelabel merge`: combine the checkpoints of several output folders (shards) into one, each
key once (the first folder that has it wins), then export it once. Exit codes as `annotate`:
2 when some item failed in every folder that has it, 1 for a setup error.

The format is the one the shards were annotated for (run.json `format`, recorded by `annotate`)
unless `fmt` is given; a given format must agree with every shard that records one, and shards
that record different formats (or none, from before formats were recorded) need `fmt`."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.batch.checkpoint import ERRORS, RESULTS, read_errors, read_results
from app.batch.export import canonical, export
from app.batch.files import write_atomic
from app.batch.meta import mismatch, read_meta, write_meta


def merge(sources: Sequence[Path], out: Path, fmt: str | None = None) -> int:
    metas = [read_meta(d) for d in sources]
    if not sources or any(m is None for m in metas):
        missing = [str(d) for d, m in zip(sources, metas, strict=True) if m is None]
        print(f"error: not prelabel output folders (no run.json): {missing}", file=sys.stderr)
        return 1
    first: dict[str, Any] = metas[0] or {}
    for d, m in zip(sources[1:], metas[1:], strict=True):
        if diff := mismatch(first, m or {}):
            print(f"error: {d} comes from another run ({diff})", file=sys.stderr)
            return 1
    try:
        fmt = _format(sources, [m or {} for m in metas], fmt, str(first["task"]))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for d in sources:
        for key, record in read_results(d).items():
            results.setdefault(key, record)
        errors.update(read_errors(d))
    errors = {k: e for k, e in errors.items() if k not in results}
    try:
        files = export(out, fmt, str(first["task"]), first, results)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    # The merged folder is itself a valid checkpoint (for a later merge or re-export).
    write_meta(out, {**first, "format": fmt})
    write_atomic(
        out / RESULTS, _jsonl({"key": k, "ok": True, "record": r} for k, r in results.items())
    )
    write_atomic(out / ERRORS, _jsonl({"key": k, "error": e} for k, e in errors.items()))
    print(f"merged {len(sources)} folders: {len(results)} items, {len(errors)} failed")
    print(f"wrote {len(files)} file(s) under {out}")
    return 2 if errors else 0


def _jsonl(rows: Any) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows)


def _format(
    sources: Sequence[Path], metas: Sequence[dict[str, Any]], fmt: str | None, task: str
) -> str:
    """The format to export: `fmt` (canonical, checked against the shards' recorded formats),
    else the one format every shard records; ValueError saying why not."""
    recorded = {str(d): m.get("format") for d, m in zip(sources, metas, strict=True)}
    if fmt is not None:
        fmt = canonical(fmt, task)
        other = {d: f for d, f in recorded.items() if f is not None and f != fmt}
        if other:
            raise ValueError(f"--format {fmt} disagrees with the shards' run.json: {other}")
        return fmt
    found = set(recorded.values())
    if len(found) == 1 and None not in found:
        return str(found.pop())
    raise ValueError(f"give --format: the shards' run.json record {recorded}")
