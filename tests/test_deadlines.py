"""Coarse request deadlines (proxy/deadlines.py): asyncio.timeout()'s meaning, one shared timer."""

from __future__ import annotations

import asyncio

import pytest

from proxy.deadlines import Deadlines


async def test_a_deadline_that_passes_raises_timeout_error_within_one_resolution() -> None:
    deadlines = Deadlines(resolution_s=0.02)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError), deadlines.within(0.05):
        await asyncio.Event().wait()
    waited = loop.time() - started
    assert 0.05 <= waited < 0.05 + 0.02 + 0.2  # Never early; late by a sweep at most (+ slack).


async def test_work_that_finishes_in_time_is_not_disturbed_later() -> None:
    deadlines = Deadlines(resolution_s=0.01)
    with deadlines.within(0.03):
        await asyncio.sleep(0)
    # Past the deadline: had it stayed registered, this sleep would be cancelled.
    await asyncio.sleep(0.08)
    assert not deadlines._entries


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines(resolution_s=0.01)
    entered = asyncio.Event()

    async def waits() -> None:
        with deadlines.within(10):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(waits())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadlines._entries


async def test_the_task_can_go_on_after_a_timeout_it_caught() -> None:
    deadlines = Deadlines(resolution_s=0.01)
    with pytest.raises(TimeoutError), deadlines.within(0.02):
        await asyncio.Event().wait()
    await asyncio.sleep(0.03)  # No cancellation is left pending on the task.
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_only_the_tasks_whose_time_is_up_are_cancelled() -> None:
    deadlines = Deadlines(resolution_s=0.01)

    async def wait_for(seconds: float, limit: float) -> str:
        try:
            with deadlines.within(limit):
                await asyncio.sleep(seconds)
        except TimeoutError:
            return "timed out"
        return "done"

    results = await asyncio.gather(
        wait_for(0.3, limit=0.05), wait_for(0.01, limit=0.05), wait_for(0.1, limit=1)
    )
    assert results == ["timed out", "done", "done"]


async def test_no_timer_runs_while_nothing_waits() -> None:
    deadlines = Deadlines(resolution_s=0.01)
    with deadlines.within(1):
        assert deadlines._timer is not None
    await asyncio.sleep(0.03)
    assert deadlines._timer is None
