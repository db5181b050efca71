"""Stop, heard by a turn from its first moment.

A turn listens on its reply's own group on the channel layer, so a Stop from a
tab on any process reaches it; a Stop sent from this process also sets the
turn's local event, which needs no Redis. The listener is subscribed before the
turn reads the history or searches the documents, so a Stop pressed while those
or the first token are pending is never lost.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import TypeVar

from channels.layers import get_channel_layer

from chat.broadcast import reply_group

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Subscribing waits at most this long: without Redis, a local Stop still works.
SUBSCRIBE_TIMEOUT = 1.0


class Stopped(Exception):
    """A Stop arrived before the step being waited for finished."""


class StopSignal:
    def __init__(self, *, reply_id: int) -> None:
        self.group = reply_group(reply_id)
        self.layer = get_channel_layer()
        self.channel = ""
        self.local = asyncio.Event()
        # Set on entering: done once a Stop arrives, from the layer or this process.
        self.received: asyncio.Task[object]

    async def __aenter__(self) -> "StopSignal":
        listening: list[Awaitable[object]] = [self.local.wait()]
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                self.channel = await self.layer.new_channel()
                await self.layer.group_add(self.group, self.channel)
        except Exception:
            # The reply still completes; only a Stop from another process cannot reach it.
            logger.warning("cannot listen for Stop on %s", self.group, exc_info=True)
        else:
            listening.append(self._listen())
        self.received = asyncio.create_task(_first(listening))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.received.cancel()
        with contextlib.suppress(BaseException):
            await self.received
        if self.channel:
            with contextlib.suppress(Exception):
                await self.layer.group_discard(self.group, self.channel)

    async def race(self, step: Awaitable[T]) -> T:
        """`step`'s result, unless a Stop comes first: then it is cancelled and Stopped raised."""
        task = asyncio.ensure_future(step)
        await asyncio.wait({task, self.received}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise Stopped

    async def _listen(self) -> None:
        while True:
            try:
                event = await self.layer.receive(self.channel)
            except Exception:
                logger.warning("lost the Stop listener on %s", self.group, exc_info=True)
                await asyncio.sleep(1)
                continue
            if event.get("type") == "reply.stop":
                return


async def _first(waits: list[Awaitable[object]]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
