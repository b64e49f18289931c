"""A byte-bounded LRU cache with a TTL and single-flight misses.

Used for SAM image embeddings (keyed by model and image content hash) and for low-resolution
masks kept for refinement. `get_or_compute` makes concurrent misses for one key share a single
computation: two annotators opening the same image run the encoder once.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclass
class _Entry(Generic[V]):
    value: V
    size: int
    expires: float


class TTLCache(Generic[V]):
    """LRU by bytes with expiry. `max_bytes=0` disables storing (the null cache).

    Not thread-safe: it is used from the event loop only.
    """

    def __init__(
        self,
        max_bytes: int,
        ttl_s: float,
        sizeof: Callable[[V], int],
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._sizeof = sizeof
        self._clock = clock
        self._on_change = on_change
        self._data: collections.OrderedDict[str, _Entry[V]] = collections.OrderedDict()
        self._pending: dict[str, asyncio.Future[V]] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._drop(key)
            return None
        self._data.move_to_end(key)
        entry.expires = self._clock() + self.ttl_s  # sliding TTL: an image in use stays warm
        return entry.value

    def put(self, key: str, value: V) -> None:
        size = self._sizeof(value)
        if key in self._data:
            self._drop(key)
        if size > self.max_bytes:
            return
        self._data[key] = _Entry(value, size, self._clock() + self.ttl_s)
        self.bytes += size
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._data)))
        self._changed()

    def clear(self) -> None:
        self._data.clear()
        self.bytes = 0
        self._changed()

    async def get_or_compute(self, key: str, compute: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """Return `(value, hit)`. Concurrent misses for `key` await one `compute()`."""
        value = self.get(key)
        if value is not None:
            return value, True
        task = self._pending.get(key)
        if task is None:
            # A task of its own, so one caller giving up never cancels the others' computation.
            task = asyncio.ensure_future(self._compute_and_store(key, compute))
            self._pending[key] = task
            return await asyncio.shield(task), False
        return await asyncio.shield(task), True

    async def _compute_and_store(self, key: str, compute: Callable[[], Awaitable[V]]) -> V:
        try:
            value = await compute()
        finally:
            del self._pending[key]
        self.put(key, value)
        return value

    def _drop(self, key: str) -> None:
        entry = self._data.pop(key)
        self.bytes -= entry.size
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.bytes)
