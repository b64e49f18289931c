"""Progress for a batch run: a tqdm bar (rate, ETA) on a terminal, else a plain line on
stderr every `interval_s` seconds, for logs."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any, TextIO


class Progress:
    def __init__(self, total: int, interval_s: float = 5.0, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.interval_s = interval_s
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self._bar: Any = None
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.t0 = time.perf_counter()
        if self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, unit="item", file=self.stream, dynamic_ncols=True)
        else:
            self._ticker = asyncio.get_running_loop().create_task(self._tick_lines())

    def tick(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        if self._bar is not None:
            self._bar.update(1)
            if self.failed:
                self._bar.set_postfix(failed=self.failed, refresh=False)

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.done}/{self.total} items done, {self.failed} failed, "
            f"{self.rate:.2f} items/s, {self.elapsed_s:.1f} s"
        )

    async def _tick_lines(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            print(f"progress: {self.line()}", file=self.stream, flush=True)

    async def stop(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
