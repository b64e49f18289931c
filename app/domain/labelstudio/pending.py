"""Predictions computed under a time budget, finishing in the background.

Label Studio's "retrieve predictions" sends every selected task in one `/predict` call with a
100 s read timeout. `within(budget)` starts (or joins) one computation per task key, waits at
most `budget` seconds, and returns what finished; the rest keep running and are kept here, so
the next call for the same tasks returns them at once. Failed computations are not kept: the
next call tries again; each failure is reported once, to `on_failure`, whether or not a caller
was still waiting for it.

The computations are awaited directly, never through `asyncio.shield`: a shield's outer future
that fails after the wait gave up is never read, and asyncio then logs "Future exception was
never retrieved" with a traceback for every failed background prediction. `asyncio.wait` does
not cancel what it waits for, so no shield is needed.
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


def _one(result: object) -> int:
    return 1


class PendingResults(Generic[R]):
    """Finished results, least recently used dropped first once there are more than
    `max_results` or their `size` (bytes, by default 1 each) passes `max_bytes`; plus the
    computations still running. `on_failure(key, error)` is called once per failed computation
    (not for cancelled ones)."""

    def __init__(
        self,
        max_results: int = 100_000,
        max_bytes: int | None = None,
        size: Callable[[R], int] = _one,
        on_failure: Callable[[Hashable, BaseException], None] | None = None,
    ) -> None:
        self.max_results = max_results
        self.max_bytes = max_bytes
        self.size = size
        self.on_failure = on_failure
        self.nbytes = 0
        self._done: collections.OrderedDict[Hashable, tuple[R, int]] = collections.OrderedDict()
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
        error = task.exception()  # also marks it retrieved
        if error is not None:
            if self.on_failure is not None:
                self.on_failure(key, error)
            else:
                log.warning("prediction %r failed: %s", key, error)
            return
        result = task.result()
        nbytes = self.size(result)
        old = self._done.pop(key, None)
        if old is not None:
            self.nbytes -= old[1]
        self._done[key] = (result, nbytes)
        self.nbytes += nbytes
        while self._done and (
            len(self._done) > self.max_results
            or (self.max_bytes is not None and self.nbytes > self.max_bytes)
        ):
            self.nbytes -= self._done.popitem(last=False)[1][1]

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
                out[i] = self._done[key][0]
            else:
                waiting.setdefault(self._start(key, compute), []).append(i)
        if waiting:
            # asyncio.wait cancels nothing when the budget runs out (nor when this caller is
            # cancelled): the work goes on.
            await asyncio.wait(list(waiting), timeout=budget_s)
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
