"""A server process's background work: lease renewal, presence heartbeats, sweeps.

Each runs as one named task per event loop (a server process has one loop; the
tests run one per test). Keeping them here lets whoever owns the loop stop them
together and wait until they have ended, and lets the tests find work that
outlived its test.
"""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

_tasks: dict[asyncio.AbstractEventLoop, dict[str, asyncio.Task[None]]] = {}


def background_start(name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> bool:
    """Run `work()` as this loop's task `name`, unless it already runs; True if started."""
    loop = asyncio.get_running_loop()
    # A closed loop's tasks can never run again.
    for closed in [other for other in _tasks if other.is_closed()]:
        del _tasks[closed]
    tasks = _tasks.setdefault(loop, {})
    if name in tasks and not tasks[name].done():
        return False
    tasks[name] = loop.create_task(work(), name=name)
    return True


async def background_stop(*names: str) -> None:
    """Cancel this loop's tasks of these names (all of them if none is named), and
    return once they have ended."""
    tasks = _tasks.get(asyncio.get_running_loop(), {})
    stopping = [tasks.pop(name) for name in (names or list(tasks)) if name in tasks]
    pending = set(stopping)
    while pending:
        for task in pending:
            task.cancel()
        # A task can swallow its cancellation (a library that turns it into a
        # timeout error, which the task's own error handling then catches and
        # carries on): cancel it again rather than wait for ever.
        _, pending = await asyncio.wait(pending, timeout=1)
    for task in stopping:
        if not task.cancelled():
            task.exception()  # retrieved: a stopped task's error is not logged as lost


def background_loops() -> list[asyncio.AbstractEventLoop]:
    """The open event loops that have background tasks still running."""
    return [
        loop
        for loop, tasks in _tasks.items()
        if not loop.is_closed() and any(not task.done() for task in tasks.values())
    ]
