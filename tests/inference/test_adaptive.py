"""AdaptiveSession: the wide session for a call alone, the narrow one while calls overlap."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from app.inference.adaptive import AdaptiveSession


class Recorder:
    def __init__(self, name: str, gate: threading.Event | None = None) -> None:
        self.name = name
        self.gate = gate
        self.entered = threading.Event()

    def run(self, outputs: Sequence[str] | None, feeds: Mapping[str, Any]) -> str:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(5)
        return self.name

    def get_inputs(self) -> list[str]:
        return [f"{self.name}-input"]

    def get_outputs(self) -> list[str]:
        return []

    def get_providers(self) -> list[str]:
        return ["CPUExecutionProvider"]


def test_lone_calls_use_the_wide_session_and_overlapping_ones_the_narrow() -> None:
    gate = threading.Event()
    wide, narrow = Recorder("wide", gate), Recorder("narrow")
    s = AdaptiveSession(wide, narrow)
    first: list[str] = []
    t = threading.Thread(target=lambda: first.append(s.run(None, {})))
    t.start()
    assert wide.entered.wait(5)  # the first call is in flight, holding the wide session
    assert s.run(None, {}) == "narrow"  # so this one overlaps
    gate.set()
    t.join(5)
    assert first == ["wide"]
    assert s.run(None, {}) == "wide"  # alone again
    assert s.calls == {"wide": 2, "narrow": 1}
    assert s.get_inputs() == ["wide-input"] and s.get_providers() == ["CPUExecutionProvider"]


def test_warm_up_runs_on_both_sessions() -> None:
    s = AdaptiveSession(Recorder("wide"), Recorder("narrow"))
    seen: list[str] = []
    s.warm_up(lambda: seen.append(s.run(None, {})))
    assert seen == ["wide", "narrow"] and s.run(None, {}) == "wide"
