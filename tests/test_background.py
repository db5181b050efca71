"""Background work per event loop (chat/background.py), and the tests' own clean-up of
work a failed test leaves running (tests/cleanup.py)."""

import asyncio
import contextlib
import threading

import pytest

from chat import leases
from chat.background import background_loops, background_start, background_stop
from tests.cleanup import leftovers_stop


async def forever(ended: list[str], name: str) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        ended.append(name)


@pytest.mark.asyncio
async def test_one_task_per_name_and_loop_until_stopped():
    ended: list[str] = []
    assert background_start("a", lambda: forever(ended, "a"))
    assert not background_start("a", lambda: forever(ended, "a again")), "already running"
    assert background_start("b", lambda: forever(ended, "b"))
    assert asyncio.get_running_loop() in background_loops()
    await asyncio.sleep(0)  # both are under way

    await background_stop("a")
    assert ended == ["a"], "stop returns once the task has ended"
    assert background_start("a", lambda: forever(ended, "a, later"))
    await asyncio.sleep(0)
    await background_stop()
    assert sorted(ended) == ["a", "a, later", "b"]
    assert asyncio.get_running_loop() not in background_loops()


@pytest.mark.asyncio
async def test_a_task_that_swallows_its_cancellation_is_cancelled_again():
    cancels: list[int] = []

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancels.append(1)
                if len(cancels) > 1:
                    raise
                # As a timeout that replaces the cancellation would: caught, and on it goes.

    assert background_start("stubborn", stubborn)
    await asyncio.sleep(0)
    async with asyncio.timeout(10):
        await background_stop("stubborn")
    assert len(cancels) == 2
    assert asyncio.get_running_loop() not in background_loops()


@pytest.mark.django_db(transaction=True)
def test_a_loop_left_running_in_a_thread_is_stopped(redis_keys):
    """What a test that times out inside async_to_sync leaves: a loop in a thread of
    its own, renewing the lease, its main task waiting for ever."""
    started = threading.Event()

    async def stuck() -> None:
        await leases.lease_start()
        started.set()
        await asyncio.Event().wait()

    def run() -> None:
        # Its main task is cancelled: asgiref would hand that to the waiting test.
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(stuck())

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(10)

    assert len(leftovers_stop()) == 1
    thread.join(10)
    assert not thread.is_alive(), "its asyncio.run returned"
    assert background_loops() == []
