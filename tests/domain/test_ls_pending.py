"""PendingResults: answer within the budget, finish the rest in the background."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable

import pytest

from app.domain.labelstudio.pending import PendingResults


def test_slow_jobs_continue_and_the_next_call_returns_them_at_once() -> None:
    async def scenario() -> None:
        store: PendingResults[str] = PendingResults()
        release = asyncio.Event()
        calls: list[str] = []

        def job(name: str, gate: asyncio.Event | None = None) -> Callable[[], Awaitable[str]]:
            async def compute() -> str:
                calls.append(name)
                if gate is not None:
                    await gate.wait()
                return name.upper()

            return compute

        first = await store.within(
            [("a", job("a")), ("b", job("b", release)), ("c", job("c"))], budget_s=0.05
        )
        assert first == ["A", None, "C"]  # b is still running
        assert store.running == 1
        release.set()
        await store.drain()
        second = await store.within(
            [("a", job("a")), ("b", job("b")), ("c", job("c"))], budget_s=0.05
        )
        assert second == ["A", "B", "C"]
        assert calls == ["a", "b", "c"]  # nothing computed twice

    asyncio.run(scenario())


def test_failures_are_reported_and_retried_next_time() -> None:
    async def scenario() -> None:
        store: PendingResults[int] = PendingResults()
        attempts = 0

        async def flaky() -> int:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                raise ValueError("first time")
            return 42

        [first] = await store.within([("k", flaky)], budget_s=1.0)
        assert isinstance(first, ValueError)
        [second] = await store.within([("k", flaky)], budget_s=1.0)
        assert second == 42 and attempts == 2

    asyncio.run(scenario())


def test_the_same_key_twice_in_one_call_runs_once() -> None:
    async def scenario() -> None:
        store: PendingResults[int] = PendingResults(max_results=1)
        runs = 0

        async def compute() -> int:
            nonlocal runs
            runs += 1
            return runs

        got = await store.within([("k", compute), ("k", compute)], budget_s=1.0)
        assert got == [1, 1] and runs == 1
        await store.within([("other", compute)], budget_s=1.0)
        [again] = await store.within([("k", compute)], budget_s=1.0)  # evicted (max 1): rerun
        assert again == 3

    asyncio.run(scenario())


def test_budget_zero_returns_nothing_but_keeps_working() -> None:
    async def scenario() -> None:
        store: PendingResults[int] = PendingResults()
        gate = asyncio.Event()

        async def compute() -> int:
            await gate.wait()
            return 1

        assert await store.within([("k", compute)], budget_s=0) == [None]
        gate.set()
        await store.drain()
        assert await store.within([("k", compute)], budget_s=0) == [1]

    asyncio.run(scenario())


@pytest.mark.parametrize("budget", [0.0, 0.01])
def test_empty_job_list(budget: float) -> None:
    assert asyncio.run(PendingResults[int]().within([], budget)) == []


def test_a_failure_after_the_budget_is_reported_once_and_never_unretrieved() -> None:
    """The old `asyncio.shield` wrappers failed after the wait had given up and nobody read
    them: asyncio logged "Future exception was never retrieved" with a traceback."""
    caught: list[dict[str, object]] = []
    failures: list[tuple[object, str]] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: caught.append(ctx))
        store: PendingResults[int] = PendingResults(
            on_failure=lambda key, e: failures.append((key, str(e)))
        )
        gate = asyncio.Event()

        async def compute() -> int:
            await gate.wait()
            raise ValueError("image corrupt")

        assert await store.within([("k", compute), ("j", compute)], budget_s=0) == [None, None]
        gate.set()
        await store.drain()
        gc.collect()  # unretrieved futures report when collected
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert caught == []
    assert sorted(failures) == [("j", "image corrupt"), ("k", "image corrupt")]


def test_finished_results_are_bounded_by_bytes() -> None:
    async def scenario() -> None:
        store: PendingResults[str] = PendingResults(max_bytes=10, size=len)

        def const(value: str) -> Callable[[], Awaitable[str]]:
            async def compute() -> str:
                return value

            return compute

        await store.within([("a", const("aaaa")), ("b", const("bbbb"))], budget_s=1)
        assert store.nbytes == 8
        await store.within([("c", const("cccc"))], budget_s=1)  # 12 > 10: "a" goes
        assert store.nbytes == 8
        rerun = await store.within([("a", const("AAAA"))], budget_s=1)
        assert rerun == ["AAAA"]  # recomputed, not the old "aaaa"
        await store.within([("huge", const("x" * 11))], budget_s=1)
        assert store.nbytes <= 10

    asyncio.run(scenario())
