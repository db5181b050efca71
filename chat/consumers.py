"""The room's websocket: opens and closes it, and forwards broadcasts to its page.

Frames come from htmx's ws extension as JSON: {"content": ..., "HEADERS": {...}}
sends a message; a frame with an "action" is a control frame (the README's
protocol table lists them); chat.room_frames checks and handles each. A streaming
reply reaches the page as deltas (chat.deltas); "sync", with "since" (a room
version) or with "message" and "seq", is how a page catches up or repairs.
"""

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import translation

from chat import (
    connections,
    deltas,
    lifecycle,
    metrics,
    rendering,
    selectors,
    services,
    shutdown,
)
from chat.broadcast import room_group
from chat.budget_socket import BudgetNotices
from chat.frames import key_pk, language
from chat.models import Room
from chat.outbox import Outbox
from chat.room_frames import (
    CLOSE_NOT_LOGGED_IN,
    CLOSE_REMOVED,
    CLOSE_ROOM_NOT_FOUND,
    CLOSE_TOO_MANY_CONNECTIONS,
    RoomFrames,
)
from chat.room_presence import RoomPresence
from chat.room_sync import RoomSync
from chat.throttle import TokenBucket

logger = logging.getLogger(__name__)

# The Redis feed was lost: "service restart", which the page retries.
CLOSE_FEED_LOST = 1012
# Room events whose fragment every tab gets as-is (chat_message).
FORWARDED_EVENTS = {"chat.message", "chat.presence", "chat.queue"}


class ChatConsumer(RoomPresence, RoomSync, BudgetNotices, RoomFrames, AsyncWebsocketConsumer):
    # None on a refused socket, which reads no frames; connect() sets both before any frame.
    room: Room = None  # type: ignore[assignment]
    outbox: Outbox = None  # type: ignore[assignment]
    # Counted against CHAT_MAX_CONNECTIONS_PER_USER, across processes (chat.connections).
    counted = False
    # The page's language, as LocaleMiddleware picked it for the page.
    language: str = settings.LANGUAGE_CODE
    # The newest message a reset of the room deleted: later updates of it are ghosts.
    cleared_through = 0

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            # The session expired or its user logged out: the page says so.
            await self._refuse_socket(CLOSE_NOT_LOGGED_IN)
            return
        room = await selectors.room_aget(pk=self.scope["url_route"]["kwargs"]["pk"], user=user)
        if room is None:
            await self._refuse_socket(CLOSE_ROOM_NOT_FOUND)
            return
        if shutdown.draining():
            await self._refuse_socket(shutdown.CLOSE_RESTARTING)
            return
        await lifecycle.process_start()
        if not await connections.connection_open(user_id=user.pk):
            await self._refuse_socket(CLOSE_TOO_MANY_CONNECTIONS)
            return
        self.counted = True
        self.room = room
        self.language = language(self.scope)
        metrics.OPEN_WEBSOCKETS.inc()
        # Catch-up reads cost the database thread every tab shares: a few at
        # once, then one a second (CHAT_SYNC_RATE).
        self.syncs = TokenBucket(rate=settings.CHAT_SYNC_RATE, burst=settings.CHAT_SYNC_BURST)
        # Made before joining the group, whose broadcasts it carries; it can
        # watch the connection's buffer only once the handshake is done.
        outbox = Outbox(
            self._write,
            self._close_with,
            limit=settings.CHAT_OUTBOX_LIMIT,
            send_buffer=settings.CHAT_SOCKET_SEND_BUFFER,
        )
        self.outbox = outbox
        await self.channel_layer.group_add(room_group(room.pk), self.channel_name)
        await self.accept()
        outbox.attach(self.base_send)
        shutdown.socket_opened(self)
        if shutdown.draining():
            # The drain began while this socket was opening, after it closed the others.
            await self.close(code=shutdown.CLOSE_RESTARTING)

    async def _refuse_socket(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        shutdown.socket_closed(self)
        if self.counted:
            self.counted = False
            await connections.connection_close(user_id=self.scope["user"].pk)
        if self.room is None:
            return
        metrics.OPEN_WEBSOCKETS.dec()
        try:
            await self.channel_layer.group_discard(room_group(self.room.pk), self.channel_name)
        except Exception:
            # Redis is gone; its subscription went with it.
            logger.info("could not leave room %s's group", self.room.pk, exc_info=True)
        if self.present:
            # Read up to now: the page saw what came while it was open (chat.unread).
            try:
                await database_sync_to_async(services.room_read_mark)(
                    room_id=self.room.pk, user_id=self.scope["user"].pk
                )
            except Exception:
                logger.info("could not mark room %s read", self.room.pk, exc_info=True)
            await self._presence_leave()

    async def dispatch(self, message: dict[str, Any]) -> None:
        # A room broadcast never touches the database, so it skips the
        # close_old_connections() Channels runs before every handler in the
        # database thread: that hop, per frame per tab, was the largest cost of
        # fanning a reply out (docs/benchmark.md).
        if message["type"] in FORWARDED_EVENTS:
            await self.chat_message(message)
        elif message["type"] == "chat.delta":
            await self.chat_delta(message)
        else:
            await super().dispatch(message)

    async def chat_message(self, event: dict[str, Any]) -> None:
        """A fragment broadcast to the room: forward it unchanged, in this tab's language.

        The event's "key" names the message it carries, so a tab that reads
        slowly gets only that message's newest version (chat.outbox).
        """
        if 0 < key_pk(event.get("key")) <= self.cleared_through:
            return  # a reply that was streaming when the room was reset
        html = event.get("translations", {}).get(self.language, event["html"])
        await self.outbox.put(html, key=event.get("key"))

    async def chat_delta(self, event: dict[str, Any]) -> None:
        """A streaming reply's delta: the same frame for every language (chat.deltas)."""
        if 0 < key_pk(event["key"]) <= self.cleared_through:
            return  # a reply that was streaming when the room was reset
        await self.outbox.put(event["frame"], key=("delta", event["key"]), merge=deltas.merge)

    async def chat_room_reset(self, event: dict[str, Any]) -> None:
        """The room's conversation was cleared (its system prompt changed)."""
        self.cleared_through = max(self.cleared_through, event["cleared_through"])
        await self.chat_message({**event, "key": None})

    async def layer_down(self, event: dict[str, Any]) -> None:
        """This process lost Redis (chat.layers): the page shows it is offline and retries."""
        await self.close(code=CLOSE_FEED_LOST)

    async def layer_reconnected(self, event: dict[str, Any]) -> None:
        """The feed came back after a drop: broadcasts in between are lost, so the page re-syncs."""
        with translation.override(self.language):
            await self.send(text_data=rendering.sync_request())

    async def send(
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        # Every text frame goes through the outbox, so nothing overtakes what waits there.
        if text_data is not None and not close and self.outbox is not None:
            await self.outbox.put(text_data)
        else:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    async def _write(self, text: str) -> None:
        metrics.FRAMES_SENT.inc()
        await super().send(text_data=text)

    async def _close_with(self, code: int) -> None:
        await self.close(code=code)

    async def chat_member_removed(self, event: dict[str, Any]) -> None:
        if event["user_id"] == self.scope["user"].pk:
            await self.close(code=CLOSE_REMOVED)

    async def chat_room_gone(self, event: dict[str, Any]) -> None:
        """The room was deleted, or this user left it."""
        if event["user_id"] in (None, self.scope["user"].pk):
            await self.close(code=CLOSE_ROOM_NOT_FOUND)

    async def _refuse(self, reason: str) -> None:
        await self.send(text_data=rendering.composer_answer(error=reason))
