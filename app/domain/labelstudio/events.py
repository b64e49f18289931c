"""Annotation events from Label Studio's webhooks, kept for active learning and micro-models.

The last `maxlen` events stay in memory; with a path, every event is also appended to a JSON
Lines file (one object per line), so nothing is lost across restarts.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from pathlib import Path
from typing import Any


class EventLog:
    def __init__(self, path: Path | None, maxlen: int = 10_000) -> None:
        self.path = path
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=maxlen)
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def record(self, event: dict[str, Any]) -> None:
        """Blocking (file append): call it from a worker thread."""
        entry = {"received_at": time.time(), **event}
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)
        with self._lock:
            self.recent.append(entry)
            self.counts[str(event.get("action", "UNKNOWN"))] += 1
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
