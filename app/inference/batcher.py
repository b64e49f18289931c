"""The dynamic batcher: one per model (and per SAM stage), used by every path.

Callers submit single items; worker threads take whatever is queued (up to `max_batch_size`,
waiting at most `max_wait_ms` after the oldest item for the batch to fill), run the batch
function once, and resolve each caller's future with its own result. Properties:

- list in, same-length list out; an item whose result is an exception fails alone, and a batch
  function that raises is retried item by item so one bad item never fails its batch-mates;
- two priority lanes: `Lane.INTERACTIVE` items are always taken before `Lane.BULK` ones, and each
  lane has its own bounded queue so a bulk backlog never makes interactive requests overflow;
- a worker held for clicks: with several workers and `interactive_reserve_s` > 0, bulk work
  occupies at most `workers - 1` of them for that long after the latest interactive item, so a
  click never waits behind a bulk batch (a batch cannot be preempted once running);
- a full lane raises `Overloaded` (HTTP 429 with Retry-After) at submit time, and so does an item
  whose expected queue wait (the items ahead of it x the measured compute time per item /
  workers) exceeds its own deadline (it would expire in the queue) or, for an interactive item,
  `max_queue_wait_s`: under overload a caller gets a fast 429, not a long wait or a late 504;
- an item past its deadline is never computed (`DeadlineExceeded`, HTTP 504), and a caller who
  stops waiting cancels its item if it has not started;
- explicit `start()` / `stop(drain=True)`; the batch function runs on the worker threads, never on
  an event loop. `submit` (async) and `submit_future` (threads, CLI) share one queue.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Generic, Protocol, TypeVar

from app.errors import DeadlineExceeded, NotReady, Overloaded, PrelabelError

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")


class Lane(IntEnum):
    INTERACTIVE = 0
    BULK = 1


@dataclass(frozen=True)
class BatchConfig:
    max_batch_size: int = 8
    max_wait_ms: float = 2.0
    max_queue: int = 256
    workers: int = 1
    retry_after_s: int = 1
    # Keep a worker free of bulk work for this long after each interactive item (0: off).
    interactive_reserve_s: float = 0.0
    # Refuse an interactive item whose expected queue wait exceeds this (None: its deadline).
    max_queue_wait_s: float | None = None


class BatchObserver(Protocol):
    """Receives the scheduler's measurements (the metrics module implements it)."""

    def batch_done(self, size: int, compute_s: float) -> None: ...
    def queue_wait(self, lane: Lane, wait_s: float) -> None: ...
    def depth(self, lane: Lane, depth: int) -> None: ...
    def rejected(self, lane: Lane, reason: str) -> None: ...


class NullObserver:
    def batch_done(self, size: int, compute_s: float) -> None: ...
    def queue_wait(self, lane: Lane, wait_s: float) -> None: ...
    def depth(self, lane: Lane, depth: int) -> None: ...
    def rejected(self, lane: Lane, reason: str) -> None: ...


@dataclass(eq=False)
class _Item(Generic[In, Out]):
    payload: In
    future: concurrent.futures.Future[Out]
    lane: Lane
    enqueued: float
    deadline: float | None


BatchFn = Callable[[Sequence[In]], Sequence[Out | BaseException]]


class Batcher(Generic[In, Out]):
    """Dynamic batcher around `fn`, a function from N payloads to N results (or exceptions)."""

    def __init__(
        self,
        name: str,
        fn: BatchFn[In, Out],
        config: BatchConfig,
        observer: BatchObserver | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.name = name
        self.config = config
        self._fn = fn
        self._clock = clock  # times the batch function (tests inject one)
        self._obs: BatchObserver = observer or NullObserver()
        self._lanes: dict[Lane, collections.deque[_Item[In, Out]]] = {
            lane: collections.deque() for lane in Lane
        }
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # drain and batch-fill waits
        # One condition per worker on the same lock, and a stack of the idle ones: new work
        # wakes the worker that went idle last (LIFO). A lone request stream then stays on one
        # thread; alternating threads on one ORT session measured ~10% slower per call.
        self._wake = [threading.Condition(self._lock) for _ in range(config.workers)]
        self._idle: list[int] = []
        self._threads: list[threading.Thread] = []
        self._accepting = False
        self._closing = False
        self._in_flight = 0
        self._busy = 0  # workers running a batch
        self._bulk_busy = 0  # workers running a batch that holds bulk items
        self._last_interactive = float("-inf")  # monotonic time of the latest interactive item
        self._item_s: float | None = None  # compute s per item (moving average), for admission

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._threads:
                return
            self._accepting, self._closing = True, False
        for i in range(self.config.workers):
            t = threading.Thread(
                target=self._work, args=(i,), name=f"batcher-{self.name}-{i}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def stop(self, drain: bool = True, timeout: float = 30.0) -> None:
        """Stop accepting; with `drain`, finish queued work first (up to `timeout` seconds)."""
        end = time.monotonic() + timeout
        with self._cond:
            self._accepting = False
            while drain and (self._queued() or self._in_flight):
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            dropped = [item for lane in self._lanes.values() for item in lane]
            for lane in self._lanes.values():
                lane.clear()
            self._closing = True
            self._cond.notify_all()
            for wake in self._wake:
                wake.notify_all()
        for item in dropped:
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(NotReady(f"{self.name} is shutting down"))
        for t in self._threads:
            t.join(timeout=max(0.0, end - time.monotonic()) + 1.0)
        self._threads.clear()

    @property
    def running(self) -> bool:
        return self._accepting

    @property
    def idle_workers(self) -> int:
        with self._cond:
            return len(self._idle)

    def depth(self, lane: Lane | None = None) -> int:
        with self._cond:
            return self._queued() if lane is None else len(self._lanes[lane])

    # -- submission ----------------------------------------------------------------------------

    def submit_future(
        self, payload: In, lane: Lane = Lane.INTERACTIVE, timeout: float | None = None
    ) -> concurrent.futures.Future[Out]:
        """Queue one item from any thread; the future resolves on a worker thread."""
        now = time.monotonic()
        deadline = None if timeout is None else now + timeout
        item: _Item[In, Out] = _Item(payload, concurrent.futures.Future(), lane, now, deadline)
        with self._cond:
            if not self._accepting:
                raise NotReady(f"{self.name} is not accepting work")
            queue = self._lanes[lane]
            if len(queue) >= self.config.max_queue:
                self._purge(lane, now)
            if len(queue) >= self.config.max_queue:
                self._obs.rejected(lane, "queue_full")
                raise Overloaded(
                    f"{self.name} is overloaded ({lane.name.lower()} queue full); retry later",
                    headers={"Retry-After": str(self.config.retry_after_s)},
                )
            self._admit(lane, timeout, now)
            queue.append(item)
            if lane is Lane.INTERACTIVE:
                self._last_interactive = now
            self._obs.depth(lane, len(queue))
            if self._idle:
                self._wake[self._idle.pop()].notify()
            self._cond.notify()  # a worker waiting for its batch to fill
        return item.future

    async def submit(
        self, payload: In, lane: Lane = Lane.INTERACTIVE, timeout: float | None = None
    ) -> Out:
        """Queue one item and await its result; `DeadlineExceeded` after `timeout` seconds."""
        fut = self.submit_future(payload, lane, timeout)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        # wait_for's timeout (or a TimeoutError the batch function returned for this item). No
        # PrelabelError subclasses TimeoutError, so none of ours is rewritten here.
        except TimeoutError as e:
            raise DeadlineExceeded(f"{self.name}: deadline of {timeout:.3g} s exceeded") from e

    # -- workers -----------------------------------------------------------------------------

    def _queued(self) -> int:
        return sum(len(q) for q in self._lanes.values())

    def _expected_wait(self, lane: Lane) -> float:
        ahead = len(self._lanes[Lane.INTERACTIVE]) if lane is Lane.INTERACTIVE else self._queued()
        return ahead * (self._item_s or 0.0) / self.config.workers

    def _admit(self, lane: Lane, timeout: float | None, now: float) -> None:
        """Refuse an item whose expected queue wait is over its limit (lock held). The estimate
        counts the live items queued ahead of it (interactive ones first: a bulk item waits for
        both lanes) at the measured compute time per item, shared by the workers; it is off
        until a batch has been timed."""
        limits = [timeout]
        if lane is Lane.INTERACTIVE:
            limits.append(self.config.max_queue_wait_s)
        limit = min((x for x in limits if x is not None), default=None)
        if self._item_s is None or limit is None or self._expected_wait(lane) <= limit:
            return
        for ahead in (Lane.INTERACTIVE,) if lane is Lane.INTERACTIVE else tuple(Lane):
            self._purge(ahead, now)  # dead items ahead must not count
        wait = self._expected_wait(lane)
        if wait > limit:
            self._obs.rejected(lane, "queue_wait")
            raise Overloaded(
                f"{self.name} is overloaded (expected queue wait {wait:.1f} s, over "
                f"{limit:.1f} s); retry later",
                headers={"Retry-After": str(self.config.retry_after_s)},
            )

    def _purge(self, lane: Lane, now: float) -> None:
        """Drop items whose callers gave up or whose deadline passed, so dead work never holds
        a queue slot that a live request could use (called with the lock held)."""
        queue = self._lanes[lane]
        live = []
        for item in queue:
            if item.future.cancelled():
                continue
            if item.deadline is not None and now > item.deadline:
                if item.future.set_running_or_notify_cancel():
                    self._obs.rejected(lane, "deadline")
                    item.future.set_exception(
                        DeadlineExceeded(f"{self.name}: deadline passed while queued")
                    )
                continue
            live.append(item)
        queue.clear()
        queue.extend(live)
        self._obs.depth(lane, len(queue))

    def _reserved_until(self) -> float:
        """Until when bulk work may not take the last free worker (lock held); -inf if never."""
        cfg = self.config
        if cfg.workers < 2 or cfg.interactive_reserve_s <= 0 or self._closing:
            return float("-inf")
        if self._bulk_busy < cfg.workers - 1:
            return float("-inf")
        return self._last_interactive + cfg.interactive_reserve_s

    def _takeable(self, allow_bulk: bool) -> int:
        inter = len(self._lanes[Lane.INTERACTIVE])
        return inter + len(self._lanes[Lane.BULK]) if allow_bulk else inter

    def _pop(self, allow_bulk: bool = True) -> _Item[In, Out]:
        for lane in Lane if allow_bulk else (Lane.INTERACTIVE,):  # INTERACTIVE first
            if self._lanes[lane]:
                item = self._lanes[lane].popleft()
                self._obs.depth(lane, len(self._lanes[lane]))
                return item
        raise IndexError("empty")

    def _take_batch(self, worker: int) -> list[_Item[In, Out]] | None:
        cfg = self.config
        with self._cond:
            while True:
                reserved_until = self._reserved_until()
                allow_bulk = time.monotonic() >= reserved_until
                if self._takeable(allow_bulk):
                    break
                if self._closing and not self._queued():
                    return None
                self._idle.append(worker)
                # Bulk work held back by the reservation is retried when it expires.
                held = self._lanes[Lane.BULK] and not allow_bulk
                self._wake[worker].wait(reserved_until - time.monotonic() if held else None)
                if worker in self._idle:
                    self._idle.remove(worker)
            if cfg.max_wait_ms > 0 and cfg.max_batch_size > 1:
                oldest = min(q[0].enqueued for q in self._lanes.values() if q)
                fill_until = oldest + cfg.max_wait_ms / 1000.0
                while self._queued() < cfg.max_batch_size and not self._closing:
                    left = fill_until - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            # Share the queue with the other idle workers instead of one worker taking it all and
            # leaving them nothing: on CPU a batch costs as much per item as single runs, so a
            # greedy batch only delays its last items.
            idle_others = max(0, cfg.workers - self._busy - 1)
            allow_bulk = time.monotonic() >= self._reserved_until()
            queued = self._takeable(allow_bulk)
            limit = min(cfg.max_batch_size, -(-queued // (1 + idle_others)))
            batch: list[_Item[In, Out]] = []
            now = time.monotonic()
            while len(batch) < limit and self._takeable(allow_bulk):
                item = self._pop(allow_bulk)
                if not item.future.set_running_or_notify_cancel():
                    continue  # the caller gave up before we started
                if item.deadline is not None and now > item.deadline:
                    self._obs.rejected(item.lane, "deadline")
                    item.future.set_exception(
                        DeadlineExceeded(f"{self.name}: deadline passed while queued")
                    )
                    continue
                self._obs.queue_wait(item.lane, now - item.enqueued)
                batch.append(item)
            self._in_flight += len(batch)
            self._busy += 1 if batch else 0
            self._bulk_busy += 1 if any(i.lane is Lane.BULK for i in batch) else 0
            return batch

    def _work(self, worker: int) -> None:
        while (batch := self._take_batch(worker)) is not None:
            if not batch:
                continue
            compute_s = None
            try:
                compute_s = self._run(batch)
            finally:
                with self._cond:
                    if compute_s is not None:
                        per_item = compute_s / len(batch)
                        prev = self._item_s
                        self._item_s = per_item if prev is None else 0.8 * prev + 0.2 * per_item
                    self._in_flight -= len(batch)
                    self._busy -= 1
                    if any(i.lane is Lane.BULK for i in batch):
                        self._bulk_busy -= 1  # this worker takes the next bulk batch itself
                    self._cond.notify_all()

    def _call(self, payloads: Sequence[In]) -> Sequence[Out | BaseException]:
        results = self._fn(payloads)
        if len(results) != len(payloads):
            raise RuntimeError(f"{self.name}: {len(payloads)} items in, {len(results)} results out")
        return results

    def _run(self, batch: list[_Item[In, Out]]) -> float:
        """Run one batch and resolve its futures; returns the compute seconds."""
        payloads = [item.payload for item in batch]
        t0 = self._clock()
        try:
            results = self._call(payloads)
        except Exception as e:
            if len(batch) == 1:
                results = [e]
            else:  # isolate the culprit: one item at a time
                results = []
                for p in payloads:
                    try:
                        results.extend(self._call([p]))
                    except Exception as one:
                        results.append(one)
        compute_s = self._clock() - t0
        self._obs.batch_done(len(batch), compute_s)
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, PrelabelError):
                    log.error("%s: item failed", self.name, exc_info=result)
                item.future.set_exception(result)
            else:
                item.future.set_result(result)
        return compute_s
