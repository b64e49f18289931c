"""TTLCache: byte-bounded LRU, TTL on an injected clock, and single-flight misses ordered by
events (never by sleeps)."""

from __future__ import annotations

import asyncio

import pytest

from app.inference.cache import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    max_bytes: int = 100,
    ttl_s: float = 10.0,
    clock: Clock | None = None,
    seen: list[int] | None = None,
) -> TTLCache[bytes]:
    return TTLCache(
        max_bytes,
        ttl_s,
        len,
        clock=clock or Clock(),
        on_change=None if seen is None else seen.append,
    )


class Computation:
    """A compute() whose completion the test releases; counts its calls."""

    def __init__(self, value: bytes = b"v" * 10, error: Exception | None = None) -> None:
        self.value = value
        self.error = error
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> bytes:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.value


# --- bounds and expiry --------------------------------------------------------------------


def test_byte_bound_evicts_least_recently_used() -> None:
    seen: list[int] = []
    cache = make(max_bytes=100, seen=seen)
    cache.put("a", b"a" * 40)
    cache.put("b", b"b" * 40)
    assert cache.get("a") == b"a" * 40  # a is now the most recently used
    cache.put("c", b"c" * 40)
    assert cache.get("b") is None
    assert cache.get("a") == b"a" * 40
    assert cache.get("c") == b"c" * 40
    assert len(cache) == 2
    assert cache.bytes == 80
    assert seen[-1] == 80
    assert max(seen) <= 100  # the reported size never exceeds the bound


def test_several_evictions_make_room_for_a_large_entry() -> None:
    cache = make(max_bytes=100)
    for k in "abcd":
        cache.put(k, b"x" * 25)
    cache.put("big", b"y" * 90)
    assert len(cache) == 1
    assert cache.bytes == 90
    assert cache.get("big") == b"y" * 90


def test_replacing_a_key_counts_its_bytes_once() -> None:
    cache = make(max_bytes=100)
    cache.put("a", b"a" * 60)
    cache.put("a", b"b" * 70)
    assert cache.bytes == 70
    assert cache.get("a") == b"b" * 70


def test_entry_larger_than_max_is_not_stored() -> None:
    cache = make(max_bytes=100)
    cache.put("small", b"s" * 30)
    cache.put("huge", b"h" * 101)
    assert cache.get("huge") is None
    assert cache.get("small") == b"s" * 30  # nothing was evicted for it
    assert cache.bytes == 30
    cache.put("small", b"h" * 101)  # an oversized replacement drops the stale value
    assert cache.get("small") is None
    assert cache.bytes == 0


def test_zero_bytes_is_a_null_cache() -> None:
    cache = make(max_bytes=0)
    cache.put("a", b"a")
    assert cache.get("a") is None
    assert len(cache) == 0


def test_ttl_expiry_on_the_injected_clock() -> None:
    clock = Clock()
    cache = make(ttl_s=10.0, clock=clock)
    cache.put("a", b"a" * 10)
    cache.put("b", b"b" * 10)
    clock.now += 9.5
    assert cache.get("a") == b"a" * 10  # sliding TTL: a now expires at +19.5
    clock.now += 1.0
    assert cache.get("b") is None  # expired at +10
    assert cache.get("a") == b"a" * 10
    clock.now += 10.0
    assert cache.get("a") is None
    assert len(cache) == 0
    assert cache.bytes == 0


def test_clear_empties_the_cache() -> None:
    seen: list[int] = []
    cache = make(seen=seen)
    cache.put("a", b"a" * 10)
    cache.clear()
    assert cache.get("a") is None
    assert cache.bytes == 0
    assert seen[-1] == 0


# --- single flight ------------------------------------------------------------------------


def test_concurrent_misses_compute_once() -> None:
    async def main() -> None:
        cache = make()
        compute = Computation()
        callers = [asyncio.ensure_future(cache.get_or_compute("k", compute)) for _ in range(5)]
        await compute.started.wait()  # every caller has run up to its await by now
        assert not any(c.done() for c in callers)
        compute.release.set()
        results = await asyncio.gather(*callers)
        assert compute.calls == 1
        assert [v for v, _ in results] == [compute.value] * 5
        assert [hit for _, hit in results] == [False, True, True, True, True]
        assert await cache.get_or_compute("k", Computation()) == (compute.value, True)
        assert compute.calls == 1

    asyncio.run(main())


def test_different_keys_compute_separately() -> None:
    async def main() -> None:
        cache = make()
        one, two = Computation(b"1" * 5), Computation(b"2" * 5)
        a = asyncio.ensure_future(cache.get_or_compute("one", one))
        b = asyncio.ensure_future(cache.get_or_compute("two", two))
        await one.started.wait()
        await two.started.wait()
        two.release.set()
        assert await b == (b"2" * 5, False)
        assert not a.done()
        one.release.set()
        assert await a == (b"1" * 5, False)

    asyncio.run(main())


def test_exception_reaches_every_waiter_and_is_not_cached() -> None:
    async def main() -> None:
        cache = make()
        failing = Computation(error=RuntimeError("encoder failed"))
        callers = [asyncio.ensure_future(cache.get_or_compute("k", failing)) for _ in range(3)]
        await failing.started.wait()
        failing.release.set()
        results = await asyncio.gather(*callers, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) and str(r) == "encoder failed" for r in results)
        assert failing.calls == 1
        assert cache.get("k") is None
        retry = Computation()
        retry.release.set()
        assert await cache.get_or_compute("k", retry) == (retry.value, False)
        assert retry.calls == 1

    asyncio.run(main())


@pytest.mark.parametrize("cancelled", [0, 1], ids=["first-caller", "joiner"])
def test_cancelled_caller_does_not_cancel_the_computation(cancelled: int) -> None:
    async def main() -> None:
        cache = make()
        compute = Computation()
        callers = [asyncio.ensure_future(cache.get_or_compute("k", compute)) for _ in range(3)]
        await compute.started.wait()
        callers[cancelled].cancel()
        with pytest.raises(asyncio.CancelledError):
            await callers[cancelled]
        late = asyncio.ensure_future(cache.get_or_compute("k", Computation()))
        compute.release.set()
        others = [c for i, c in enumerate(callers) if i != cancelled]
        assert [v for v, _ in await asyncio.gather(*others, late)] == [compute.value] * 3
        assert compute.calls == 1
        assert cache.get("k") == compute.value

    asyncio.run(main())


def test_all_callers_cancelled_still_stores_the_value() -> None:
    async def main() -> None:
        cache = make()
        compute = Computation()
        caller = asyncio.ensure_future(cache.get_or_compute("k", compute))
        await compute.started.wait()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        compute.release.set()
        again = Computation()
        # The orphaned computation is still the one in flight: joining it computes nothing.
        assert await cache.get_or_compute("k", again) == (compute.value, True)
        assert again.calls == 0
        assert compute.calls == 1

    asyncio.run(main())
