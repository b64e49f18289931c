"""PendingResults: answer within the budget, finish the rest in the background."""

from __future__ import annotations

import asyncio

import pytest

from app.domain.labelstudio.pending import PendingResults


def test_slow_jobs_continue_and_the_next_call_returns_them_at_once() -> None:
    async def scenario() -> None:
        store: PendingResults[str] = PendingResults()
        release = asyncio.Event()
        calls: list[str] = []

        def job(name: str, gate: asyncio.Event | None = None):  # type: ignore[no-untyped-def]
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
