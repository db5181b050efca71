"""A socket's outgoing frames: while its client reads slowly, only the newest version of
each message waits, so a slow tab can neither slow the room nor grow the server's memory.

Daphne's ASGI `send` never pushes back: a client that stops reading fills the
kernel's socket buffer, then Twisted's, without limit. Twisted does tell a
registered producer when its buffer passes 64 KB (pauseProducing) and when it
has drained (resumeProducing); the outbox registers itself as the socket's
producer and, while paused, keeps the frames instead of writing them:

- a frame for a message replaces that message's waiting one (each carries the
  whole message, so skipping versions loses nothing) and keeps its place; a
  streaming reply's delta is merged into its waiting one instead;
- other frames (the composer, notices) wait in order;
- past `limit` waiting frames the socket is closed with 1013, which the page
  retries and then catches up on, like any reconnect.

The kernel's send buffer is fixed at `send_buffer` bytes (Linux doubles it), so
what a stalled tab costs is bounded there too.

Under channels.testing there is no Twisted transport, and frames go straight out.
"""

import asyncio
import contextlib
import functools
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from chat import metrics

# "Try again later": htmx's ws extension reconnects on it.
CLOSE_TOO_SLOW = 1013


@implementer(IPushProducer)
class Outbox:
    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        close: Callable[[int], Awaitable[None]],
        *,
        limit: int,
        send_buffer: int = 0,
    ) -> None:
        self._send, self._close, self._limit = send, close, limit
        self._send_buffer = send_buffer
        self._waiting: OrderedDict[object, str] = OrderedDict()
        self._paused = self._closed = False
        self._flusher: asyncio.Task[None] | None = None
        self._previous: Any = None

    def attach(self, asgi_send: Callable[..., Any]) -> bool:
        """Become the producer of the daphne connection behind `asgi_send`, if there is one."""
        protocol = _daphne_protocol(asgi_send)
        transport = getattr(protocol, "transport", None)
        if transport is None:
            return False
        # The HTTP channel that upgraded the connection is its producer still;
        # take its place and pass every call on to it, so it behaves as before.
        self._previous = transport.producer
        if self._previous is not None:
            transport.unregisterProducer()
        transport.registerProducer(self, True)
        if self._send_buffer:
            # Left to itself, Linux grows a stalled socket's send buffer to megabytes
            # (tcp_wmem); a fixed one bounds what the kernel holds for it too.
            with contextlib.suppress(AttributeError, OSError):
                transport.getHandle().setsockopt(
                    socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer
                )
        return True

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def put(
        self, text: str, key: object | None = None, merge: Callable[[str, str], str] | None = None
    ) -> None:
        """Send `text` now, or keep it while the client is behind. `key` names the message
        it carries: a newer frame with the same key replaces the waiting one, or with
        `merge` is merged into it (a reply's deltas, chat.deltas)."""
        if self._closed:
            return
        if not self._paused and not self._waiting:
            await self._send(text)
            return
        if key is None:
            key = object()
        elif (waiting := self._waiting.get(key)) is not None:
            metrics.VERSIONS_SKIPPED.inc()
            if merge is not None:
                text = merge(waiting, text)
        self._waiting[key] = text
        if len(self._waiting) > self._limit:
            metrics.SLOW_TABS_CLOSED.inc()
            self._closed = True
            self._waiting.clear()
            await self._close(CLOSE_TOO_SLOW)

    # IPushProducer: Twisted calls these from the event loop's thread.
    def pauseProducing(self) -> None:
        self._paused = True
        if self._previous is not None:
            self._previous.pauseProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        if self._previous is not None:
            self._previous.resumeProducing()
        if self._waiting and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.ensure_future(self._flush())

    def stopProducing(self) -> None:
        self._paused = self._closed = True
        self._waiting.clear()
        if self._previous is not None:
            self._previous.stopProducing()

    async def _flush(self) -> None:
        # Each write may pause us again (Twisted calls pauseProducing inside it).
        while self._waiting and not self._paused and not self._closed:
            _key, text = self._waiting.popitem(last=False)
            await self._send(text)


def _daphne_protocol(asgi_send: Callable[..., Any]) -> Any:
    """The daphne protocol object behind an ASGI send callable, through Channels' wrappers.

    Daphne hands each connection `partial(server.handle_reply, protocol)`;
    Channels' session middleware wraps it in a bound method that keeps it as
    `real_send`.
    """
    for _ in range(10):
        if isinstance(asgi_send, functools.partial):
            if getattr(asgi_send.func, "__name__", "") == "handle_reply" and asgi_send.args:
                return asgi_send.args[0]
            return None
        inner = getattr(getattr(asgi_send, "__self__", None), "real_send", None)
        if inner is None:
            return None
        asgi_send = inner
    return None
