"""A model's CPU session that uses every core for a call that runs alone, and one core's share
per call when the model's batcher workers overlap.

Measured on 2 cores (NanoDet-g, scripts/bench_detect.py): one request alone runs in ~20 ms on
two intra-op threads against ~33 ms on one; but two workers calling one 2-thread session at once
oversubscribe the cores (two callers plus the pool thread) and each call slows to ~54 ms, where
two 1-thread sessions take ~34 ms each. So the model holds two sessions of the same file, a wide
one and a narrow one, and each call picks by how many calls are in flight. The weights are loaded
twice (NanoDet: 15 MB); on a GPU a single session is used.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any


class AdaptiveSession:
    """Duck-types the parts of `onnxruntime.InferenceSession` the adapters use."""

    def __init__(self, wide: Any, narrow: Any) -> None:
        self.wide = wide
        self.narrow = narrow
        self._lock = threading.Lock()
        self._active = 0
        self.calls = {"wide": 0, "narrow": 0}

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, Any]) -> Any:
        with self._lock:
            self._active += 1
            alone = self._active == 1
            self.calls["wide" if alone else "narrow"] += 1
        try:
            return (self.wide if alone else self.narrow).run(output_names, feeds)
        finally:
            with self._lock:
                self._active -= 1

    def warm_up(self, call: Callable[[], object]) -> None:
        """Run `call` (a forward through an adapter on this session) on both sessions."""
        call()  # alone: the wide session
        with self._lock:
            self._active += 1  # pretend another call is in flight: the narrow one
        try:
            call()
        finally:
            with self._lock:
                self._active -= 1

    def get_inputs(self) -> Any:
        return self.wide.get_inputs()

    def get_outputs(self) -> Any:
        return self.wide.get_outputs()

    def get_providers(self) -> Any:
        return self.wide.get_providers()
