"""Draining: the state of a process between SIGTERM (or Ctrl-C) and its exit.

chat.lifecycle runs the drain; the reply engine, the services and the consumer
consult this state: no reply starts while draining, and replies still writing
when the grace period ends save all their text and end as interrupted.
"""

import asyncio
import weakref
from typing import Protocol


class _Socket(Protocol):
    async def close(self, code: int | None = None, reason: str | None = None) -> None: ...


# The room sockets this process serves, closed when it starts draining.
_sockets: "weakref.WeakSet[_Socket]" = weakref.WeakSet()
_draining = False
_grace_over: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}

# A clean close, which static/chat/chat.js reconnects on, to a live process.
# (1012, "service restart", would say more, but daphne's websocket library sends
# only 1000 or 3000-4999.)
CLOSE_RESTARTING = 1000


def draining() -> bool:
    return _draining


def drain_begin() -> None:
    global _draining
    _draining = True


def grace_end() -> None:
    """Replies still writing stop now (the grace period is over, or a second Ctrl-C)."""
    _event().set()


async def grace_over() -> None:
    """Return once replies still writing must stop."""
    await _event().wait()


def _event() -> asyncio.Event:
    loop = asyncio.get_running_loop()
    if loop not in _grace_over:
        _grace_over[loop] = asyncio.Event()
    return _grace_over[loop]


def socket_opened(socket: _Socket) -> None:
    _sockets.add(socket)


def socket_closed(socket: _Socket) -> None:
    _sockets.discard(socket)


async def sockets_close() -> None:
    """Close every room socket of this process, so its tabs reconnect to a live one."""
    await asyncio.gather(
        *(socket.close(code=CLOSE_RESTARTING) for socket in list(_sockets)),
        return_exceptions=True,
    )
