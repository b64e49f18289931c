"""Measuring event-loop stalls: a probe task that asks to wake every `interval_s` and records how
late each wake-up was. On a loop that is free, lateness stays around a millisecond; while
something runs on the loop (or holds the GIL) for X seconds, one wake-up is X late.

Used in-process (the app runs on the test's own loop through httpx.ASGITransport), so what it
sees is exactly what a probe or another client of that server would wait.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType


class StallProbe:
    """`async with StallProbe() as probe: ...`; then `probe.max_stall` (seconds),
    `probe.blocked` (the summed lateness of wake-ups over 20 ms late: time the loop could not
    run; smaller lateness is what a CPU-bound worker thread costs anyway, up to the GIL's 5 ms
    switch interval per wake-up) and `probe.ticks`."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.max_stall = 0.0
        self.blocked = 0.0
        self.ticks = 0
        self._t0 = time.perf_counter()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self._t0 = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.ticks += 1
            self._record(time.perf_counter())

    def _record(self, now: float) -> None:
        late = now - self._t0 - self.interval_s
        self.max_stall = max(self.max_stall, late)
        if late > 0.02:
            self.blocked += late

    async def __aenter__(self) -> StallProbe:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)  # started before the work under test
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        self._record(time.perf_counter())  # the wake-up still pending: late by this much too
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
