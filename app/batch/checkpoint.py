"""The durable, append-only checkpoint of a batch run: `results.jsonl` and `errors.jsonl`.

results.jsonl: one line per finished item, {"key", "ok": true, "record"}; errors.jsonl: one
line per failed attempt, {"key", "error"}. Every line is flushed and fsync'ed before `append_*`
returns (`fsync_every=1`); with `fsync_every=N`, a power loss can lose at most the last N - 1
lines, which the next run simply recomputes. A process killed mid-write (kill -9) leaves at
most one truncated last line: reading ignores it, and opening for append cuts it off first so
the next line starts clean.

Reading dedupes by key (the first result wins), so an item whose line was written twice, or
that finished in two shards, is still exported exactly once. A failed item is retried by the
next run; it counts as failed only while it has no result.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any, TextIO

RESULTS = "results.jsonl"
ERRORS = "errors.jsonl"


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Parsed lines of a JSONL file; a truncated (unterminated, unparsable) last line is
    skipped. A corrupt line anywhere else is a real problem: ValueError."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail is b"" when the file ends in a newline
    out = []
    for n, line in enumerate(complete, 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: corrupt checkpoint line") from e
    if tail.strip():
        # Cut short by a crash: that item is recomputed.
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(tail))
    return out


def read_results(out_dir: Path) -> dict[str, Any]:
    """key -> record, first result per key, in file order."""
    found: dict[str, Any] = {}
    for line in read_lines(out_dir / RESULTS):
        found.setdefault(str(line["key"]), line["record"])
    return found


def read_errors(out_dir: Path) -> dict[str, str]:
    """key -> latest error, for keys without a result."""
    done = read_results(out_dir)
    errors: dict[str, str] = {}
    for line in read_lines(out_dir / ERRORS):
        key = str(line["key"])
        if key not in done:
            errors[key] = str(line["error"])
    return errors


class Checkpoint:
    """Appends results and errors durably. Thread-safe: call `append_*` from worker threads
    (`asyncio.to_thread`) so fsync never blocks the event loop."""

    def __init__(self, out_dir: Path, fsync_every: int = 1) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.fsync_every = max(1, fsync_every)
        self._lock = threading.Lock()
        self._results = self._open(out_dir / RESULTS)
        self._errors = self._open(out_dir / ERRORS)
        self._unsynced = 0

    @staticmethod
    def _open(path: Path) -> TextIO:
        if path.exists():
            raw = path.read_bytes()
            keep = raw.rfind(b"\n") + 1
            if keep != len(raw):  # a truncated last line from a crash: drop it
                with path.open("r+b") as f:
                    f.truncate(keep)
        return path.open("a", encoding="utf-8")

    def append_result(self, key: str, record: Any) -> None:
        self._write(self._results, {"key": key, "ok": True, "record": record})

    def append_error(self, key: str, error: str) -> None:
        self._write(self._errors, {"key": key, "error": error})

    def _write(self, f: TextIO, obj: dict[str, Any]) -> None:
        line = json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            f.write(line)
            f.flush()
            self._unsynced += 1
            if self._unsynced >= self.fsync_every:
                for g in (self._results, self._errors):
                    os.fsync(g.fileno())
                self._unsynced = 0

    def close(self) -> None:
        with self._lock:
            for f in (self._results, self._errors):
                f.flush()
                os.fsync(f.fileno())
                f.close()
