"""What a test leaves running: stopped before the next test starts, and before the
process exits.

Async tests run on pytest-asyncio's loop, which cancels its tasks when the test
ends. A test that fails inside async_to_sync (a timeout, say) leaves that loop
running in a thread of its own, with the lease renewal and the watchdog on it;
and a cancelled task's database call goes on in asgiref's thread after the loop
has closed. Either would touch the next test's database.
"""

import asyncio
import contextlib
import faulthandler
import sys
from concurrent.futures import CancelledError

from asgiref.sync import SyncToAsync

from chat.background import background_loops

# Seconds leftovers get to end; twice what they need on a busy machine.
WITHIN = 20.0


def leftovers_stop() -> list[str]:
    """Cancel every task of each loop still running background work, and wait for
    database calls already started; returns what was left running, if anything."""
    left = []
    for loop in background_loops():
        left.append(repr(loop))
        if loop.is_running():
            # Cancelling the loop's main task too ends its asyncio.run, so its thread.
            cancelling = asyncio.run_coroutine_threadsafe(_cancel_all(), loop)
            # Cancelled itself when the loop closes first, which is the point.
            with contextlib.suppress(CancelledError):
                cancelling.result(timeout=WITHIN)
        else:
            for task in asyncio.all_tasks(loop):
                task.cancel()
    # asgiref runs database calls of every event loop on this one thread, in order.
    SyncToAsync.single_thread_executor.submit(lambda: None).result(timeout=WITHIN)
    return left


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=WITHIN)


def exit_guard(seconds: float = 60.0) -> None:
    """If the process has not exited `seconds` from now, print every thread's stack
    and exit with status 1: a run that hangs must end, and say where."""
    faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__)
