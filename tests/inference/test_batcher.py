"""The scheduler, on a deterministic fake model whose timing the tests control with events."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from app.errors import DeadlineExceeded, NotReady, Overloaded
from app.inference.batcher import BatchConfig, Batcher, Lane


class FakeModel:
    """Doubles numbers; records every batch; can be held on a gate to build up a queue.
    A negative input fails (as an item-level error), 13 raises from the whole batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.threads: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.entered.set()
        self.gate.wait(10)
        self.batches.append(list(items))
        self.threads.append(threading.current_thread().name)
        if 13 in items:
            raise RuntimeError("poisoned batch")
        return [ValueError(f"bad {x}") if x < 0 else 2 * x for x in items]


def make(model: FakeModel, **kw: float) -> Batcher[int, int]:
    opts = {"max_batch_size": 4, "max_wait_ms": 0.0, "max_queue": 64, **kw}
    cfg = BatchConfig(**opts)  # type: ignore[arg-type]
    b: Batcher[int, int] = Batcher("fake", model, cfg)
    b.start()
    return b


def hold(model: FakeModel, b: Batcher[int, int]) -> None:
    """Occupy the single worker with item 0 so later submissions queue up."""
    model.gate.clear()
    model.entered.clear()
    b.submit_future(0)
    assert model.entered.wait(5)


def test_results_follow_their_items_in_order() -> None:
    model = FakeModel()
    b = make(model)
    try:
        hold(model, b)
        futs = [b.submit_future(i) for i in range(1, 10)]
        model.gate.set()
        assert [f.result(5) for f in futs] == [2 * i for i in range(1, 10)]
        flat = [x for batch in model.batches for x in batch]
        assert flat == list(range(10))  # FIFO within a lane
    finally:
        b.stop()


def test_queued_items_form_full_batches() -> None:
    model = FakeModel()
    b = make(model)
    try:
        hold(model, b)
        futs = [b.submit_future(i) for i in range(1, 9)]
        model.gate.set()
        for f in futs:
            f.result(5)
        assert [len(x) for x in model.batches] == [1, 4, 4]
    finally:
        b.stop()


def test_max_wait_lets_a_batch_fill() -> None:
    model = FakeModel()
    b = make(model, max_wait_ms=5000.0, max_batch_size=3)
    try:
        futs = [b.submit_future(i) for i in (1, 2, 3)]  # full before the wait runs out
        assert [f.result(5) for f in futs] == [2, 4, 6]
        assert model.batches == [[1, 2, 3]]
    finally:
        b.stop()


def test_interactive_lane_goes_before_bulk_backlog() -> None:
    model = FakeModel()
    b = make(model, max_batch_size=2)
    try:
        hold(model, b)
        bulk = [b.submit_future(100 + i, Lane.BULK) for i in range(6)]
        click = b.submit_future(7, Lane.INTERACTIVE)
        model.gate.set()
        assert click.result(5) == 14
        for f in bulk:
            f.result(5)
        assert model.batches[1][0] == 7  # first batch after the held one leads with the click
        assert model.batches[1] == [7, 100]
    finally:
        b.stop()


def test_full_lane_is_rejected_with_retry_after_and_other_lane_still_accepts() -> None:
    model = FakeModel()
    b = make(model, max_queue=2)
    try:
        hold(model, b)
        b.submit_future(1, Lane.BULK)
        b.submit_future(2, Lane.BULK)
        with pytest.raises(Overloaded) as err:
            b.submit_future(3, Lane.BULK)
        assert err.value.headers["Retry-After"] == "1"
        ok = b.submit_future(4, Lane.INTERACTIVE)
        model.gate.set()
        assert ok.result(5) == 8
    finally:
        b.stop()


def test_expired_items_are_never_computed() -> None:
    model = FakeModel()
    b = make(model)
    try:
        hold(model, b)
        late = b.submit_future(5, timeout=0.0)
        fine = b.submit_future(6, timeout=30.0)
        model.gate.set()
        with pytest.raises(DeadlineExceeded):
            late.result(5)
        assert fine.result(5) == 12
        assert all(5 not in batch for batch in model.batches)
    finally:
        b.stop()


def test_async_submit_times_out_and_cancels_its_item() -> None:
    model = FakeModel()
    b = make(model)

    async def scenario() -> None:
        hold(model, b)
        with pytest.raises(DeadlineExceeded):
            await b.submit(9, timeout=0.01)
        model.gate.set()
        assert await b.submit(10, timeout=5) == 20

    try:
        asyncio.run(scenario())
        assert all(9 not in batch for batch in model.batches)
    finally:
        b.stop()


def test_one_bad_item_does_not_fail_its_batch_mates() -> None:
    model = FakeModel()
    b = make(model)
    try:
        hold(model, b)
        futs = [b.submit_future(x) for x in (1, -1, 2)]
        poisoned = [b.submit_future(x) for x in (3, 13, 4)]
        model.gate.set()
        assert futs[0].result(5) == 2 and futs[2].result(5) == 4
        with pytest.raises(ValueError):
            futs[1].result(5)
        assert poisoned[0].result(5) == 6 and poisoned[2].result(5) == 8
        with pytest.raises(RuntimeError):
            poisoned[1].result(5)
    finally:
        b.stop()


def test_stop_drains_queued_work_then_refuses_new_work() -> None:
    model = FakeModel()
    b = make(model)
    hold(model, b)
    futs = [b.submit_future(i) for i in range(1, 6)]
    stopper = threading.Thread(target=b.stop)
    stopper.start()
    model.gate.set()
    stopper.join(10)
    assert [f.result(0) for f in futs] == [2, 4, 6, 8, 10]
    with pytest.raises(NotReady):
        b.submit_future(1)


def test_concurrent_submitters_from_many_threads_get_their_own_results() -> None:
    model = FakeModel()
    b = make(model, max_batch_size=8)
    b2: Batcher[int, int] = b
    results: dict[int, int] = {}

    def client(i: int) -> None:
        results[i] = b2.submit_future(100 + i).result(10)

    try:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert results == {i: 2 * (100 + i) for i in range(64)}
    finally:
        b.stop()


def test_a_lone_request_stream_stays_on_one_worker() -> None:
    """New work wakes the worker that went idle last, so sequential requests keep one thread
    (and its warm caches) instead of alternating between workers."""
    model = FakeModel()
    b2: Batcher[int, int] = Batcher("fake2", model, BatchConfig(max_batch_size=1, workers=3))
    b2.start()
    try:
        for i in range(20):
            idle = threading.Event()
            while b2.idle_workers < 3:  # every worker parked before the next request
                idle.wait(0.001)
            assert b2.submit_future(100 + i).result(5) == 2 * (100 + i)
        assert len(set(model.threads)) == 1
    finally:
        b2.stop()


def test_abandoned_items_free_their_queue_slots() -> None:
    model = FakeModel()
    b = make(model, max_queue=2)
    try:
        hold(model, b)
        gone = b.submit_future(1)
        late = b.submit_future(2, timeout=0.0)
        assert gone.cancel()  # its caller gave up
        ok = b.submit_future(3)  # the lane held two dead items: they are purged, not counted
        with pytest.raises(DeadlineExceeded):
            late.result(0)
        model.gate.set()
        assert ok.result(5) == 6
        assert all(x not in batch for batch in model.batches for x in (1, 2))
    finally:
        b.stop()


class BulkGate:
    """Doubles numbers; a batch holding a bulk item (>= 100) blocks on `gate`. `entered` counts
    the bulk batches that started."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        if any(x >= 100 for x in items):
            self.entered.release()
            self.gate.wait(10)
        return [2 * x for x in items]


def two_workers(model: BulkGate, reserve_s: float) -> Batcher[int, int]:
    cfg = BatchConfig(max_batch_size=1, max_wait_ms=0.0, workers=2, interactive_reserve_s=reserve_s)
    b: Batcher[int, int] = Batcher("gate", model, cfg)
    b.start()
    return b


def test_a_worker_is_kept_for_clicks_while_bulk_work_is_running() -> None:
    model = BulkGate()
    b = two_workers(model, reserve_s=600.0)
    try:
        assert b.submit_future(1).result(5) == 2  # an annotator is active
        first = b.submit_future(100, Lane.BULK)
        assert model.entered.acquire(timeout=5)
        second = b.submit_future(101, Lane.BULK)
        # The other worker wakes, finds only bulk work it may not take, and parks again.
        parked = threading.Event()
        for _ in range(5000):  # bounded: without the reservation it never parks
            if b.idle_workers:
                break
            parked.wait(0.001)
        assert b.idle_workers == 1 and b.depth(Lane.BULK) == 1
        # A click is answered at once, while the bulk batch still holds the first worker.
        assert b.submit_future(2).result(5) == 4
        assert not first.done() and not second.done()
        model.gate.set()
        assert (first.result(5), second.result(5)) == (200, 202)
    finally:
        model.gate.set()
        b.stop()


def test_without_clicks_or_reservation_bulk_work_uses_every_worker() -> None:
    for reserve_s, click in ((0.0, True), (600.0, False)):
        model = BulkGate()
        b = two_workers(model, reserve_s)
        try:
            if click:
                assert b.submit_future(1).result(5) == 2
            futures = [b.submit_future(100 + i, Lane.BULK) for i in range(2)]
            assert model.entered.acquire(timeout=5) and model.entered.acquire(timeout=5)
            model.gate.set()
            assert [f.result(5) for f in futures] == [200, 202]
        finally:
            model.gate.set()
            b.stop()


def test_held_bulk_work_starts_when_the_reservation_expires() -> None:
    model = BulkGate()
    b = two_workers(model, reserve_s=0.05)
    try:
        assert b.submit_future(1).result(5) == 2
        futures = [b.submit_future(100 + i, Lane.BULK) for i in range(2)]
        # Both bulk batches end up running at once with no further submission: the parked
        # worker retries when the reservation runs out.
        assert model.entered.acquire(timeout=5) and model.entered.acquire(timeout=5)
        model.gate.set()
        assert [f.result(5) for f in futures] == [200, 202]
    finally:
        model.gate.set()
        b.stop()


class FakeClock:
    """Stands in for perf_counter: the model advances it by `per_item` s per item it runs, so
    the batcher measures exactly that compute time."""

    def __init__(self, model: FakeModel, per_item: float) -> None:
        self.now = 0.0
        self.model, self.per_item = model, per_item

    def __call__(self) -> float:
        return self.now

    def run(self, items: Sequence[int]) -> list[int | BaseException]:
        self.now += self.per_item * len(items)
        return self.model(items)


class Rejections:
    def __init__(self) -> None:
        self.reasons: list[tuple[Lane, str]] = []

    def batch_done(self, size: int, compute_s: float) -> None: ...
    def queue_wait(self, lane: Lane, wait_s: float) -> None: ...
    def depth(self, lane: Lane, depth: int) -> None: ...

    def rejected(self, lane: Lane, reason: str) -> None:
        self.reasons.append((lane, reason))


def timed(per_item: float, **kw: float) -> tuple[FakeModel, Batcher[int, int], Rejections]:
    """One worker, batches of 1, on a model that takes `per_item` s by the batcher's clock."""
    model, seen = FakeModel(), Rejections()
    clock = FakeClock(model, per_item)
    cfg = BatchConfig(max_batch_size=1, max_wait_ms=0.0, max_queue=64, **kw)  # type: ignore[arg-type]
    b: Batcher[int, int] = Batcher("fake", clock.run, cfg, seen, clock=clock)
    b.start()
    return model, b, seen


def test_an_item_that_would_wait_too_long_is_refused_at_once() -> None:
    model, b, seen = timed(1.0, max_queue_wait_s=2.0)
    try:
        assert b.submit_future(1).result(5) == 2  # measured: 1 s per item
        hold(model, b)
        queued = [b.submit_future(i) for i in (2, 3, 4)]  # expected waits 0, 1 and 2 s
        with pytest.raises(Overloaded, match=r"expected queue wait 3\.0 s, over 2\.0 s") as err:
            b.submit_future(5)
        assert err.value.headers["Retry-After"] == "1"
        bulk = b.submit_future(6, Lane.BULK)  # bulk work may wait: no limit but its deadline
        with pytest.raises(Overloaded, match=r"expected queue wait 4\.0 s, over 3\.5 s"):
            b.submit_future(7, Lane.BULK, timeout=3.5)  # it would expire in the queue
        model.gate.set()
        assert [f.result(5) for f in queued] == [4, 6, 8] and bulk.result(5) == 12
        assert seen.reasons == [(Lane.INTERACTIVE, "queue_wait"), (Lane.BULK, "queue_wait")]
        ran = {x for batch in model.batches for x in batch}
        assert 5 not in ran and 7 not in ran  # refused items never run
    finally:
        b.stop()


def test_the_deadline_alone_limits_the_wait_and_nothing_is_refused_before_a_batch_ran() -> None:
    model, b, seen = timed(1.0)
    try:
        hold(model, b)  # nothing measured yet: only the queue's length bounds it
        early = [b.submit_future(i, timeout=30.0) for i in range(1, 6)]
        model.gate.set()
        assert [f.result(5) for f in early] == [2, 4, 6, 8, 10]
        hold(model, b)
        ok = [b.submit_future(i, timeout=2.5) for i in (1, 2, 3)]  # waits 0, 1, 2 s
        with pytest.raises(Overloaded):
            b.submit_future(4, timeout=2.5)
        model.gate.set()
        assert [f.result(5) for f in ok] == [2, 4, 6]
        assert seen.reasons == [(Lane.INTERACTIVE, "queue_wait")]
    finally:
        b.stop()


def test_abandoned_items_ahead_do_not_count_towards_the_wait() -> None:
    model, b, _ = timed(1.0, max_queue_wait_s=1.5)
    try:
        b.submit_future(1).result(5)
        hold(model, b)
        gone = [b.submit_future(i) for i in (2, 3)]  # expected waits 0 and 1 s
        for f in gone:
            assert f.cancel()  # their callers gave up
        ok = b.submit_future(4)  # 2 s counting the dead items, 0 s without them
        model.gate.set()
        assert ok.result(5) == 8
    finally:
        b.stop()
