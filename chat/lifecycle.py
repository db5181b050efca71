"""A server process's life: what it does when it starts, and when it is asked to stop.

Daphne has no ASGI lifespan, so under daphne both hang on the Twisted reactor it
runs (the asyncio one daphne installs). When the reactor starts, the process
takes its lease and recovers at once what dead processes left. On SIGTERM or
SIGINT the reactor runs its "before shutdown" triggers and waits for the
Deferreds they return: ours drains. Daphne's own trigger cancels every
connection's consumer at the same moment; reply tasks are not consumers, so
they go on until the drain ends them.

In tests, with no reactor running, the first socket's connect starts the process.
"""

import asyncio
import logging
import signal
import time

from django.conf import settings

from chat import leases, shutdown
from chat.turns import supervisor, watchdog

logger = logging.getLogger(__name__)

# How long replies get to save their text once the grace period is over.
SAVE_TIMEOUT = 5.0
# Seconds within which a second stop signal is taken for a copy of the first.
SAME_SIGNAL_WITHIN = 1.0


async def process_start() -> None:
    """Hold this process's lease, then sweep for dead owners' replies, starting now.

    Safe to call again: both happen once per event loop.
    """
    await leases.lease_start()
    watchdog.watchdog_start()


async def drain(*, grace: float) -> None:
    """Stop taking replies; let those in progress finish for up to `grace` seconds;
    then save what is left of each, in full, as interrupted, and tell its tabs."""
    if shutdown.draining():
        return
    shutdown.drain_begin()
    # Tabs here reconnect to a live process, which streams the rest from the channel layer.
    await shutdown.sockets_close()
    writing = supervisor.turns_running()
    if writing:
        logger.warning(
            "shutting down: %d replies are being written, waiting up to %g s for them "
            "(a second SIGTERM or Ctrl-C saves them now)",
            len(writing),
            grace,
        )
        finished = asyncio.gather(*writing, return_exceptions=True)
        over = asyncio.create_task(shutdown.grace_over())
        await asyncio.wait(  # type: ignore[type-var]  # two futures of different result types
            {finished, over}, timeout=grace, return_when=asyncio.FIRST_COMPLETED
        )
        over.cancel()
    shutdown.grace_end()
    if left := supervisor.turns_running():
        logger.warning("saving %d unfinished replies as interrupted", len(left))
        await asyncio.wait(left, timeout=SAVE_TIMEOUT)
    # Replies this process claimed but never started writing (a consumer cancelled mid-send).
    await watchdog.turns_orphans_end()
    await leases.lease_release()


# References to the start-up task, or the event loop could drop it.
_tasks: set[asyncio.Task[None]] = set()


def install() -> None:
    """Hook start-up and the drain on daphne's reactor; nothing happens unless it runs."""
    # Imported here: Twisted is import-order-sensitive, and daphne (first in
    # INSTALLED_APPS) has installed its asyncio reactor by now.
    from twisted.internet import asyncioreactor, defer, reactor

    if not isinstance(reactor, asyncioreactor.AsyncioSelectorReactor):
        return
    loop = reactor._asyncioEventloop

    def start() -> None:
        task = loop.create_task(process_start())
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)

    def before_shutdown() -> defer.Deferred:
        # The reactor ignores signals once stopping: a second one ends the grace
        # period. One within a second is the same one twice: `uv run` (so
        # `make run`) passes on the Ctrl-C the terminal sent its child already.
        stopping_since = time.monotonic()

        def on_signal(*_: object) -> None:
            if time.monotonic() - stopping_since > SAME_SIGNAL_WITHIN:
                loop.call_soon_threadsafe(shutdown.grace_end)

        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, on_signal)
        return defer.Deferred.fromFuture(
            loop.create_task(drain(grace=settings.CHAT_SHUTDOWN_GRACE))
        )

    reactor.callWhenRunning(start)
    # zope declares interface methods without self, which shifts mypy by one argument.
    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)  # type: ignore[arg-type]
