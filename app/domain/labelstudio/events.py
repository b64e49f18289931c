"""Annotation events from Label Studio's webhooks, kept for active learning and micro-models.

In memory only a bounded summary: the last `maxlen` events as `EventSummary` (action, ids and
time, a few hundred bytes each whatever the body held) and a count per action, the actions
Label Studio sends by name and anything else as "other" (a caller cannot grow the table). With
a path, every event is also appended whole to a JSON Lines file (one object per line), so
nothing is lost across restarts; the route caps the body size (PRELABEL_LS_MAX_WEBHOOK_BYTES).
"""

from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Label Studio 1.23.2's webhook actions (webhooks/models.py WebhookAction).
ACTIONS = frozenset(
    {
        "PROJECT_CREATED",
        "PROJECT_UPDATED",
        "PROJECT_DELETED",
        "TASKS_CREATED",
        "TASKS_DELETED",
        "ANNOTATION_CREATED",
        "ANNOTATIONS_CREATED",
        "ANNOTATION_UPDATED",
        "ANNOTATIONS_DELETED",
        "LABEL_LINK_CREATED",
        "LABEL_LINK_UPDATED",
        "LABEL_LINK_DELETED",
        "START_TRAINING",
    }
)


@dataclass(frozen=True)
class EventSummary:
    """received_at: unix time; action: a known action or "other"; the ids Label Studio sent
    (None when absent or not an integer); tasks: how many tasks the event carried."""

    received_at: float
    action: str
    project: int | None
    task: int | None
    annotation: int | None
    tasks: int


def action_of(event: dict[str, Any]) -> str:
    action = event.get("action")
    return action if isinstance(action, str) and action in ACTIONS else "other"


def _id(value: object) -> int | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def summarize(event: dict[str, Any], received_at: float) -> EventSummary:
    tasks = event.get("tasks")
    return EventSummary(
        received_at,
        action_of(event),
        _id(event.get("project")),
        _id(event.get("task")),
        _id(event.get("annotation")),
        len(tasks) if isinstance(tasks, list) else int(isinstance(event.get("task"), dict)),
    )


class EventLog:
    def __init__(self, path: Path | None, maxlen: int = 10_000) -> None:
        self.path = path
        self.recent: collections.deque[EventSummary] = collections.deque(maxlen=maxlen)
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def record(self, event: dict[str, Any]) -> EventSummary:
        """Blocking (file append): call it from a worker thread. OSError when the file cannot be
        written (the summary is kept and counted all the same)."""
        now = time.time()
        summary = summarize(event, now)
        with self._lock:
            self.recent.append(summary)
            self.counts[summary.action] += 1
            if self.path is not None:
                entry = {"received_at": now, **event}
                line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
        return summary
