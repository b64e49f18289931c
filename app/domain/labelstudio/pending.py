"""Predictions computed under a time budget, finishing in the background.

Label Studio's "retrieve predictions" sends every selected task in one `/predict` call with a
100 s read timeout. `within(budget)` starts (or joins) one computation per task key, waits at
most `budget` seconds, and returns what finished; the rest keep running and are kept here, so
the next call for the same tasks returns them at once. Failed computations are not kept: the
next call tries again.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

R = TypeVar("R")


class PendingResults(Generic[R]):
    """Bounded store of finished results (LRU) plus the computations still running."""

    def __init__(self, max_results: int = 100_000) -> None:
        self.max_results = max_results
        self._done: collections.OrderedDict[Hashable, R] = collections.OrderedDict()
        self._running: dict[Hashable, asyncio.Task[R]] = {}

    def _start(self, key: Hashable, compute: Callable[[], Awaitable[R]]) -> asyncio.Task[R]:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(compute())
            self._running[key] = task
            task.add_done_callback(functools.partial(self._finished, key))
        return task

    def _finished(self, key: Hashable, task: asyncio.Task[R]) -> None:
        self._running.pop(key, None)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.warning("background prediction %r failed: %s", key, error)
            return
        self._done[key] = task.result()
        self._done.move_to_end(key)
        while len(self._done) > self.max_results:
            self._done.popitem(last=False)

    async def within(
        self,
        jobs: Sequence[tuple[Hashable, Callable[[], Awaitable[R]]]],
        budget_s: float,
    ) -> list[R | BaseException | None]:
        """Per job, in order: its result, its exception (it failed within the budget), or
        None (still running after `budget_s`; it goes on, and a later call gets it)."""
        out: list[R | BaseException | None] = [None] * len(jobs)
        waiting: dict[asyncio.Task[R], list[int]] = {}
        for i, (key, compute) in enumerate(jobs):
            if key in self._done:
                self._done.move_to_end(key)
                out[i] = self._done[key]
            else:
                waiting.setdefault(self._start(key, compute), []).append(i)
        if waiting:
            # shield: the budget running out must not cancel the work
            await asyncio.wait([asyncio.shield(t) for t in waiting], timeout=budget_s)
        for task, indices in waiting.items():
            if not task.done():
                continue
            result: R | BaseException | None
            if task.cancelled():
                result = asyncio.CancelledError()
            else:
                result = task.exception() or task.result()
            for i in indices:
                out[i] = result
        return out

    @property
    def running(self) -> int:
        return len(self._running)

    async def drain(self) -> None:
        """Wait for every running computation (shutdown, tests). Our done-callbacks were added
        first, so they have stored each result before this returns."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
