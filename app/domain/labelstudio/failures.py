"""Background failures of the Label Studio integration: one log line and one count each.

Kinds: "prediction" (past its budget), "embedding" (TASKS_CREATED precompute), "webhook" (an
event that could not be acted on), "learning" (annotations stored, pulled or trained on).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from app.domain.labelstudio.fetch import redact
from app.errors import PrelabelError

log = logging.getLogger("app.domain.labelstudio.predict")

Failure = Callable[[str, str], None]
"""(kind, reason: an error code) -> None; the runtime counts it in prometheus."""


class Busy(PrelabelError):
    """Background work refused because too much of it is in flight."""

    code = "over_capacity"
    status = 503


def report(
    kind: str, project: object, task: object, error: BaseException, on_failure: Failure | None
) -> None:
    """One line (URL query strings cut; a traceback only when unexpected) and one count."""
    if isinstance(error, PrelabelError):
        reason, message = error.code, redact(error.message)
        log.warning(
            "label studio %s failed: project=%s task=%s reason=%s: %s",
            kind, project, task, reason, message,
        )  # fmt: skip
    else:
        reason = "internal"
        log.error(
            "label studio %s failed: project=%s task=%s reason=%s: %s",
            kind, project, task, reason, type(error).__name__, exc_info=error,
        )  # fmt: skip
    if on_failure is not None:
        on_failure(kind, reason)


class BackgroundJobs:
    """Fire-and-forget coroutines, at most `limit` in flight (more are refused: reported as
    `over_capacity`); each failure reported once under `kind`."""

    def __init__(self, kind: str, limit: int, on_failure: Failure | None = None) -> None:
        self.kind = kind
        self.limit = limit
        self.on_failure = on_failure
        self._jobs: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._jobs)

    def spawn(self, about: object, work: Coroutine[Any, Any, object]) -> asyncio.Task[None] | None:
        """Start `work` (`about` names its project in reports); None when refused."""
        if len(self._jobs) >= self.limit:
            work.close()
            busy = Busy(f"{self.limit} {self.kind} jobs in flight; this one is dropped")
            report(self.kind, about, None, busy, self.on_failure)
            return None
        job = asyncio.ensure_future(self._guarded(about, work))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return job

    async def within(
        self, about: object, work: Coroutine[Any, Any, object], budget_s: float
    ) -> str:
        """Start `work` and wait up to `budget_s`: "done", "running" (it goes on) or
        "refused"."""
        job = self.spawn(about, work)
        if job is None:
            return "refused"
        done, _ = await asyncio.wait({job}, timeout=budget_s)
        return "done" if done else "running"

    async def _guarded(self, about: object, work: Coroutine[Any, Any, object]) -> None:
        try:
            await work
        except Exception as e:  # background: reported once, never raised
            report(self.kind, about, None, e, self.on_failure)

    async def drain(self) -> None:
        """Until none is left."""
        while self._jobs:
            await asyncio.gather(*self._jobs, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel all, and wait for them to end."""
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
